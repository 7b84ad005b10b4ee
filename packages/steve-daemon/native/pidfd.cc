// watchPid: a pidfd (pidfd_open, Linux >= 5.3) under uv_poll. The pidfd
// becomes readable when the process exits (turns zombie), whether or not it
// is our child, so a client's death is seen at once and without polling
// /proc.
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "addon.h"
#include "common.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

namespace steve {
namespace {

class PidWatch : public Napi::ObjectWrap<PidWatch> {
 public:
  static Napi::Function DefineClass(Napi::Env env) {
    return ObjectWrap<PidWatch>::DefineClass(
        env, "PidWatch", {InstanceMethod<&PidWatch::Close>("close")});
  }

  explicit PidWatch(const Napi::CallbackInfo& info)
      : ObjectWrap<PidWatch>(info) {}
  ~PidWatch() override { Stop(); }

  void Start(int pidfd, Napi::Function onExit) {
    Napi::Env env = Env();
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    poll_ = new uv_poll_t;
    poll_->data = this;
    pidfd_ = pidfd;
    int uverr = uv_poll_init(loop, poll_, pidfd);
    if (uverr == 0) uverr = uv_poll_start(poll_, UV_READABLE, OnReadable);
    if (uverr != 0) {
      Stop();
      throw SystemError(env, -uverr, "uv_poll_start");
    }
    // A watch alone does not keep the process alive: the daemon's servers
    // do that.
    uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    onExit_ = Napi::Persistent(onExit);
    asyncContext_ = std::make_unique<Napi::AsyncContext>(env, "steve:pidfd");
    napi_add_env_cleanup_hook(env, OnEnvCleanup, this);
    cleanupHookAdded_ = true;
    Ref();  // an active watch must not be collected before it fires
    referenced_ = true;
  }

 private:
  static void OnReadable(uv_poll_t* handle, int, int) {
    PidWatch* self = static_cast<PidWatch*>(handle->data);
    Napi::Env env = self->Env();
    Napi::HandleScope handles(env);
    Napi::Function onExit = self->onExit_.Value();
    std::unique_ptr<Napi::AsyncContext> context =
        std::move(self->asyncContext_);
    self->Stop();  // fires once; also drops our reference
    {
      Napi::CallbackScope scope(env, *context);
      try {
        onExit.Call({});
      } catch (const Napi::Error& error) {
        ReportUncaught(env, error);
      }
    }
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop();
    asyncContext_.reset();
    return info.Env().Undefined();
  }

  // Idempotent; never calls JS.
  void Stop() {
    if (poll_ != nullptr) {
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) {
        delete reinterpret_cast<uv_poll_t*>(h);
      });
      poll_ = nullptr;
    }
    if (pidfd_ >= 0) {
      close(pidfd_);
      pidfd_ = -1;
    }
    onExit_.Reset();
    if (cleanupHookAdded_) {
      cleanupHookAdded_ = false;
      napi_remove_env_cleanup_hook(Env(), OnEnvCleanup, this);
    }
    if (referenced_) {
      referenced_ = false;
      Unref();
    }
  }

  static void OnEnvCleanup(void* arg) {
    PidWatch* self = static_cast<PidWatch*>(arg);
    self->cleanupHookAdded_ = false;
    self->referenced_ = false;  // references die with the environment
    self->asyncContext_.release();
    self->Stop();
  }

  uv_poll_t* poll_ = nullptr;
  int pidfd_ = -1;
  bool cleanupHookAdded_ = false;
  bool referenced_ = false;
  Napi::FunctionReference onExit_;
  std::unique_ptr<Napi::AsyncContext> asyncContext_;
};

}  // namespace

Napi::Function DefinePidWatchClass(Napi::Env env) {
  return PidWatch::DefineClass(env);
}

// watchPid(pid, onExit) -> PidWatch | null
Napi::Value WatchPid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber())
    throw Napi::TypeError::New(env, "pid must be a number");
  if (!info[1].IsFunction())
    throw Napi::TypeError::New(env, "onExit must be a function");
  int32_t pid = info[0].As<Napi::Number>().Int32Value();
  if (pid <= 0) throw Napi::RangeError::New(env, "pid must be positive");
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    if (errno == ESRCH) return env.Null();  // already gone (and reaped)
    throw SystemError(env, errno, "pidfd_open");
  }
  // pidfd_open sets close-on-exec itself.
  Napi::Object object = GetAddonData(env).pidWatchClass.New({});
  PidWatch* watch = PidWatch::Unwrap(object);
  watch->Start(pidfd, info[1].As<Napi::Function>());  // closes pidfd on error
  return object;
}

}  // namespace steve
