// The fifo front's glue (src/fronts/fifo.ts): an inotify watch on one path
// under uv_poll, and two questions about a pipe that Node cannot ask.
//
//  - watchPath(path, mask, onEvents): inotify_add_watch on `path`; every
//    time the inotify fd is readable, all queued events are read and
//    onEvents(maskUnion) is called once with the OR of their masks (the
//    kernel already merges identical consecutive events, so a count of
//    events would mean nothing anyway). The watch does not keep the event
//    loop alive; close() stops it without calling back.
//  - bytesReadable(fd): ioctl(FIONREAD), the bytes waiting in a pipe (tokens
//    parked in the fifo), without consuming them. Works on either end.
//  - pollNow(fd, events): poll(2) with a zero timeout, the revents. On the
//    write end of a fifo, POLLERR means no process has it open for reading
//    (fs/pipe.c: pipe_poll sets EPOLLERR when pipe->readers == 0).
#include <poll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "addon.h"
#include "common.h"

namespace steve {
namespace {

class PathWatch : public Napi::ObjectWrap<PathWatch> {
 public:
  static Napi::Function DefineClass(Napi::Env env) {
    return ObjectWrap<PathWatch>::DefineClass(
        env, "PathWatch", {InstanceMethod<&PathWatch::Close>("close")});
  }

  explicit PathWatch(const Napi::CallbackInfo& info)
      : ObjectWrap<PathWatch>(info) {}
  ~PathWatch() override { Stop(); }

  // Takes ownership of `inotifyFd` (closed on error).
  void Start(int inotifyFd, Napi::Function onEvents) {
    Napi::Env env = Env();
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    fd_ = inotifyFd;
    poll_ = new uv_poll_t;
    poll_->data = this;
    int uverr = uv_poll_init(loop, poll_, fd_);
    if (uverr == 0) uverr = uv_poll_start(poll_, UV_READABLE, OnReadable);
    if (uverr != 0) {
      Stop();
      throw SystemError(env, -uverr, "uv_poll_start");
    }
    // A watch alone does not keep the process alive: the daemon's sessions
    // do that.
    uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    onEvents_ = Napi::Persistent(onEvents);
    asyncContext_ = std::make_unique<Napi::AsyncContext>(env, "steve:inotify");
    napi_add_env_cleanup_hook(env, OnEnvCleanup, this);
    cleanupHookAdded_ = true;
    Ref();  // an active watch must not be collected while libuv points at it
    referenced_ = true;
  }

 private:
  static void OnReadable(uv_poll_t* handle, int status, int) {
    PathWatch* self = static_cast<PathWatch*>(handle->data);
    uint32_t mask = 0;
    // inotify events are variable-length; this buffer holds many of them.
    alignas(struct inotify_event) char buffer[4096];
    for (;;) {
      ssize_t n = read(self->fd_, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // EAGAIN: all read
      for (char* p = buffer; p < buffer + n;) {
        auto* event = reinterpret_cast<struct inotify_event*>(p);
        mask |= event->mask;
        p += sizeof(struct inotify_event) + event->len;
      }
    }
    if (mask == 0 && status == 0) return;
    if (status < 0) mask |= IN_Q_OVERFLOW;  // the fd failed: let JS re-check
    Napi::Env env = self->Env();
    self->Ref();  // the callback may close() and drop the last reference
    {
      JsScope scope(env, *self->asyncContext_);
      try {
        self->onEvents_.Call({Napi::Number::New(env, mask)});
      } catch (const Napi::Error& error) {
        ReportUncaught(env, error);
      }
    }
    self->Unref();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop();
    return info.Env().Undefined();
  }

  // Idempotent; never calls JS. The async context stays until destruction
  // (Close may run inside OnReadable's scope, which still uses it).
  void Stop() {
    if (poll_ != nullptr) {
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) {
        delete reinterpret_cast<uv_poll_t*>(h);
      });
      poll_ = nullptr;
    }
    if (fd_ >= 0) {
      close(fd_);  // also removes the watch
      fd_ = -1;
    }
    onEvents_.Reset();
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
    PathWatch* self = static_cast<PathWatch*>(arg);
    self->cleanupHookAdded_ = false;
    self->referenced_ = false;  // references die with the environment
    self->asyncContext_.release();
    self->Stop();
  }

  uv_poll_t* poll_ = nullptr;
  int fd_ = -1;
  bool cleanupHookAdded_ = false;
  bool referenced_ = false;
  Napi::FunctionReference onEvents_;
  std::unique_ptr<Napi::AsyncContext> asyncContext_;
};

int RequireFd(const Napi::CallbackInfo& info, size_t index) {
  if (!info[index].IsNumber())
    throw Napi::TypeError::New(info.Env(), "fd must be a number");
  int fd = info[index].As<Napi::Number>().Int32Value();
  if (fd < 0) throw Napi::RangeError::New(info.Env(), "fd must not be negative");
  return fd;
}

}  // namespace

Napi::Function DefinePathWatchClass(Napi::Env env) {
  return PathWatch::DefineClass(env);
}

// watchPath(path, mask, onEvents) -> PathWatch
Napi::Value WatchPath(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString())
    throw Napi::TypeError::New(env, "path must be a string");
  if (!info[1].IsNumber())
    throw Napi::TypeError::New(env, "mask must be a number");
  if (!info[2].IsFunction())
    throw Napi::TypeError::New(env, "onEvents must be a function");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  uint32_t mask = info[1].As<Napi::Number>().Uint32Value();
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) throw SystemError(env, errno, "inotify_init1");
  if (inotify_add_watch(fd, path.c_str(), mask) < 0) {
    int err = errno;
    close(fd);
    throw SystemError(env, err, "inotify_add_watch", path);
  }
  Napi::Object object = GetAddonData(env).pathWatchClass.New({});
  PathWatch::Unwrap(object)->Start(fd, info[2].As<Napi::Function>());
  return object;
}

// bytesReadable(fd) -> number
Napi::Value BytesReadable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = RequireFd(info, 0);
  int count = 0;
  if (ioctl(fd, FIONREAD, &count) != 0)
    throw SystemError(env, errno, "ioctl(FIONREAD)");
  return Napi::Number::New(env, count);
}

// pollNow(fd, events) -> revents
Napi::Value PollNow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = RequireFd(info, 0);
  if (!info[1].IsNumber())
    throw Napi::TypeError::New(env, "events must be a number");
  struct pollfd pfd = {};
  pfd.fd = fd;
  pfd.events = static_cast<short>(info[1].As<Napi::Number>().Int32Value());
  int n;
  do {
    n = poll(&pfd, 1, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) throw SystemError(env, errno, "poll");
  return Napi::Number::New(env, n == 0 ? 0 : pfd.revents);
}

// inotify bits, for watchPath's mask and its callback.
Napi::Object InotifyEvents(Napi::Env env) {
  Napi::Object bits = Napi::Object::New(env);
  bits.Set("IN_ACCESS", IN_ACCESS);
  bits.Set("IN_MODIFY", IN_MODIFY);
  bits.Set("IN_ATTRIB", IN_ATTRIB);
  bits.Set("IN_OPEN", IN_OPEN);
  bits.Set("IN_CLOSE_WRITE", IN_CLOSE_WRITE);
  bits.Set("IN_CLOSE_NOWRITE", IN_CLOSE_NOWRITE);
  bits.Set("IN_DELETE_SELF", IN_DELETE_SELF);
  bits.Set("IN_MOVE_SELF", IN_MOVE_SELF);
  bits.Set("IN_IGNORED", IN_IGNORED);
  bits.Set("IN_Q_OVERFLOW", IN_Q_OVERFLOW);
  return bits;
}

}  // namespace steve
