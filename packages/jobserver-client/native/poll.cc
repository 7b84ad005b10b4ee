// The native half of @steve/jobserver-client: glue, no policy.
//
// - Watcher: a uv_poll handle on the JS thread's loop for one descriptor
//   (the library's private, non-blocking jobserver descriptor). While
//   started it calls back on every readability report (level-triggered, as
//   epoll reports it); JS then does the one-byte non-blocking read itself
//   and stops the watcher when nobody waits. A started watcher keeps the
//   loop alive (someone is waiting for a token); a stopped one does not.
// - mkfifo(path, mode): Node has no mkfifo; Jobserver.create() uses it.
//
// Works for anything whose driver implements poll: pipes and fifos, a CUSE
// character device, a FUSE file (the kernel forwards FUSE_POLL to the
// server). uv_poll_init refuses plain regular files (EPERM from epoll).
#include <napi.h>
#include <sys/stat.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

namespace {

// An Error shaped like node:fs's: code, errno, syscall.
Napi::Error SystemError(Napi::Env env, int errnum, const char* syscall) {
  std::string code = uv_err_name(-errnum);
  Napi::Error error = Napi::Error::New(
      env, code + ": " + std::strerror(errnum) + ", " + syscall);
  error.Set("code", Napi::String::New(env, code));
  error.Set("errno", Napi::Number::New(env, errnum));
  error.Set("syscall", Napi::String::New(env, syscall));
  return error;
}

class Watcher : public Napi::ObjectWrap<Watcher> {
 public:
  static Napi::Function DefineClass(Napi::Env env) {
    return ObjectWrap<Watcher>::DefineClass(
        env, "Watcher",
        {InstanceMethod<&Watcher::Start>("start"),
         InstanceMethod<&Watcher::Stop>("stop"),
         InstanceMethod<&Watcher::Close>("close")});
  }

  // new Watcher(fd, onReadable(status: number))
  explicit Watcher(const Napi::CallbackInfo& info) : ObjectWrap<Watcher>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "fd must be a number");
    if (!info[1].IsFunction())
      throw Napi::TypeError::New(env, "onReadable must be a function");
    int fd = info[0].As<Napi::Number>().Int32Value();
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    poll_ = new uv_poll_t;
    poll_->data = this;
    int uverr = uv_poll_init(loop, poll_, fd);
    if (uverr != 0) {
      delete poll_;
      poll_ = nullptr;
      throw SystemError(env, -uverr, "uv_poll_init");
    }
    onReadable_ = Napi::Persistent(info[1].As<Napi::Function>());
    context_ = std::make_unique<Napi::AsyncContext>(env, "steve:jobserver-poll");
    napi_add_env_cleanup_hook(env, OnEnvCleanup, this);
    cleanupHook_ = true;
  }

  ~Watcher() override { Release(); }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (poll_ == nullptr) throw Napi::Error::New(env, "watcher is closed");
    if (!started_) {
      int uverr = uv_poll_start(poll_, UV_READABLE, OnPoll);
      if (uverr != 0) throw SystemError(env, -uverr, "uv_poll_start");
      started_ = true;
      Ref();  // a started watcher must not be collected before it fires
    }
    return env.Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    StopPolling();
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
  }

  void StopPolling() {
    if (started_) {
      uv_poll_stop(poll_);
      started_ = false;
      Unref();
    }
  }

  // Idempotent; never calls JS. The descriptor itself belongs to JS.
  void Release() {
    if (poll_ == nullptr) return;
    StopPolling();
    uv_close(reinterpret_cast<uv_handle_t*>(poll_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
    onReadable_.Reset();
    context_.reset();
    if (cleanupHook_) {
      cleanupHook_ = false;
      napi_remove_env_cleanup_hook(Env(), OnEnvCleanup, this);
    }
  }

  static void OnPoll(uv_poll_t* handle, int status, int) {
    Watcher* self = static_cast<Watcher*>(handle->data);
    Napi::Env env = self->Env();
    Napi::HandleScope handles(env);
    // A callback scope, so promise jobs queued by JS run when it closes,
    // as after any other I/O callback.
    Napi::CallbackScope scope(env, *self->context_);
    try {
      self->onReadable_.Call({Napi::Number::New(env, status)});
    } catch (const Napi::Error& error) {
      napi_fatal_exception(env, error.Value());
    }
  }

  static void OnEnvCleanup(void* arg) {
    Watcher* self = static_cast<Watcher*>(arg);
    self->cleanupHook_ = false;
    self->started_ = false;  // references die with the environment
    self->context_.release();
    if (self->poll_ != nullptr) {
      uv_poll_stop(self->poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(self->poll_),
               [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      self->poll_ = nullptr;
    }
  }

  uv_poll_t* poll_ = nullptr;
  bool started_ = false;
  bool cleanupHook_ = false;
  Napi::FunctionReference onReadable_;
  std::unique_ptr<Napi::AsyncContext> context_;
};

// mkfifo(path, mode)
Napi::Value MakeFifo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "path must be a string");
  if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "mode must be a number");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  if (mkfifo(path.c_str(), info[1].As<Napi::Number>().Uint32Value()) != 0)
    throw SystemError(env, errno, "mkfifo");
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Watcher", Watcher::DefineClass(env));
  exports.Set("mkfifo", Napi::Function::New<MakeFifo>(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(jobserver_native, Init)
