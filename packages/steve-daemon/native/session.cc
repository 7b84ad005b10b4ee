// FUSE and CUSE sessions over libfuse3's low-level API, driven by libuv.
//
// No libfuse worker threads and no fuse_session_loop: the session fd sits
// under a uv_poll on the JS thread's loop; when it is readable we receive and
// dispatch requests until the (non-blocking) fd says EAGAIN. Every handler
// call therefore happens on the JS thread, and a request JS does not answer
// at once is just a fuse_req_t parked in `pending_` until JS replies.
#include "session.h"

#include <cuse_lowlevel.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "addon.h"
#include "common.h"

namespace steve {
namespace {

// Inodes of the FUSE tree. The root is FUSE_ROOT_ID (1).
constexpr fuse_ino_t kRootIno = FUSE_ROOT_ID;
constexpr fuse_ino_t kJobserverIno = 2;
constexpr fuse_ino_t kStatusIno = 3;
constexpr fuse_ino_t kControlLinkIno = 4;
constexpr const char* kJobserverName = "jobserver";
constexpr const char* kStatusName = "status";
constexpr const char* kControlLinkName = "control.sock";
// The tree never changes, so the kernel may cache names and attributes.
constexpr double kAttrTimeoutSeconds = 1.0;

Session* Self(fuse_req_t req) {
  return static_cast<Session*>(fuse_req_userdata(req));
}

// A C++ exception must never unwind through libfuse's C frames. Handler
// exceptions are already caught in Session::Call; this catches the rest
// (allocation failures, napi failures) and logs them.
template <typename F>
void Guard(const char* op, F&& body) {
  try {
    body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "steve-native: %s: %s\n", op, e.what());
  } catch (...) {
    std::fprintf(stderr, "steve-native: %s: unknown exception\n", op);
  }
}

// Replies with the part of `data` at [offset, offset + size).
void ReplyBufLimited(fuse_req_t req, const std::string& data, size_t size,
                     off_t offset) {
  if (offset >= 0 && static_cast<size_t>(offset) < data.size()) {
    size_t length = std::min(data.size() - static_cast<size_t>(offset), size);
    fuse_reply_buf(req, data.data() + offset, length);
  } else {
    fuse_reply_buf(req, nullptr, 0);
  }
}

// ---- FUSE low-level operations --------------------------------------------

void LlLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Guard("lookup", [&] { Self(req)->OnLookup(req, parent, name); });
}

void LlGetattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info*) {
  Guard("getattr", [&] { Self(req)->OnGetattr(req, ino); });
}

// Changing attributes is not supported, but O_TRUNC (`echo + > jobserver`)
// arrives as SETATTR(size=0) after OPEN: answer with the unchanged
// attributes so such opens succeed, as they do on a character device.
void LlSetattr(fuse_req_t req, fuse_ino_t ino, struct stat*, int,
               struct fuse_file_info*) {
  Guard("setattr", [&] { Self(req)->OnGetattr(req, ino); });
}

void LlReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
               struct fuse_file_info*) {
  Guard("readdir", [&] { Self(req)->OnReaddir(req, ino, size, offset); });
}

void LlOpen(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  Guard("open", [&] { Self(req)->OnOpen(req, ino, fi); });
}

void LlRelease(fuse_req_t req, fuse_ino_t, struct fuse_file_info* fi) {
  Guard("release", [&] { Self(req)->OnRelease(req, fi); });
}

void LlFlush(fuse_req_t req, fuse_ino_t, struct fuse_file_info*) {
  fuse_reply_err(req, 0);
}

void LlReadlink(fuse_req_t req, fuse_ino_t ino) {
  Guard("readlink", [&] { Self(req)->OnReadlink(req, ino); });
}

void LlRead(fuse_req_t req, fuse_ino_t, size_t size, off_t offset,
            struct fuse_file_info* fi) {
  Guard("read", [&] { Self(req)->OnRead(req, size, offset, fi); });
}

void LlWrite(fuse_req_t req, fuse_ino_t, const char* data, size_t size, off_t,
             struct fuse_file_info* fi) {
  Guard("write", [&] { Self(req)->OnWrite(req, data, size, fi); });
}

// The jobserver file answers no ioctl (TCGETS, FIONREAD, ...): ENOTTY is
// what a pipe or plain file says to an unknown request.
void LlIoctl(fuse_req_t req, fuse_ino_t, unsigned int, void*,
             struct fuse_file_info*, unsigned, const void*, size_t, size_t) {
  fuse_reply_err(req, ENOTTY);
}

void LlPoll(fuse_req_t req, fuse_ino_t, struct fuse_file_info* fi,
            struct fuse_pollhandle* ph) {
  Guard("poll", [&] { Self(req)->OnPoll(req, fi, ph); });
}

struct fuse_lowlevel_ops MakeFuseOps() {
  struct fuse_lowlevel_ops ops = {};
  ops.lookup = LlLookup;
  ops.getattr = LlGetattr;
  ops.setattr = LlSetattr;
  ops.readdir = LlReaddir;
  ops.open = LlOpen;
  ops.release = LlRelease;
  ops.flush = LlFlush;
  ops.readlink = LlReadlink;
  ops.read = LlRead;
  ops.write = LlWrite;
  ops.ioctl = LlIoctl;
  ops.poll = LlPoll;
  // Everything else (mkdir, unlink, ...) gets ENOSYS from libfuse.
  return ops;
}

// ---- CUSE operations: the device is one `jobserver` file ------------------

void CuseOpen(fuse_req_t req, struct fuse_file_info* fi) {
  Guard("open", [&] { Self(req)->OnOpen(req, kJobserverIno, fi); });
}

void CuseRead(fuse_req_t req, size_t size, off_t offset,
              struct fuse_file_info* fi) {
  Guard("read", [&] { Self(req)->OnRead(req, size, offset, fi); });
}

void CuseWrite(fuse_req_t req, const char* data, size_t size, off_t,
               struct fuse_file_info* fi) {
  Guard("write", [&] { Self(req)->OnWrite(req, data, size, fi); });
}

void CuseFlush(fuse_req_t req, struct fuse_file_info*) {
  fuse_reply_err(req, 0);
}

void CuseRelease(fuse_req_t req, struct fuse_file_info* fi) {
  Guard("release", [&] { Self(req)->OnRelease(req, fi); });
}

void CuseIoctl(fuse_req_t req, int, void*, struct fuse_file_info*, unsigned,
               const void*, size_t, size_t) {
  fuse_reply_err(req, ENOTTY);
}

void CusePoll(fuse_req_t req, struct fuse_file_info* fi,
              struct fuse_pollhandle* ph) {
  Guard("poll", [&] { Self(req)->OnPoll(req, fi, ph); });
}

struct cuse_lowlevel_ops MakeCuseOps() {
  struct cuse_lowlevel_ops ops = {};
  ops.open = CuseOpen;
  ops.read = CuseRead;
  ops.write = CuseWrite;
  ops.flush = CuseFlush;
  ops.release = CuseRelease;
  ops.ioctl = CuseIoctl;
  ops.poll = CusePoll;
  return ops;
}

// Registered with fuse_req_interrupt_func. libfuse calls it with the
// request's own mutex held, and possibly from inside fuse_req_interrupt_func
// itself; replying here would free that mutex under libfuse's feet. So only
// note the id; Session::DeliverInterrupts hands it to JS after dispatch.
void OnRequestInterrupted(fuse_req_t req, void* data) {
  Self(req)->OnInterrupt(
      static_cast<uint64_t>(reinterpret_cast<uintptr_t>(data)));
}

// The open reply for the jobserver file, built here because libfuse 3.14's
// fuse_file_info has no bit for FOPEN_STREAM (Linux >= 5.2). A stream has no
// file position, so the kernel takes no position lock (fdget_pos) for it:
// without this, one open file description of a FUSE *regular file* shared by
// a blocked reader and a writer (two threads, or parent and child after
// fork, as GNU make hands `3<>FILE` to recipes) serialises the two, and the
// writer's token return never reaches us. Pipes and character devices take
// no such lock either. Same layout as the kernel's struct fuse_open_out.
struct OpenOut {
  uint64_t fh;
  uint32_t open_flags;
  uint32_t padding;
};
constexpr uint32_t kFopenDirectIo = 1u << 0;
constexpr uint32_t kFopenNonseekable = 1u << 2;
constexpr uint32_t kFopenStream = 1u << 4;

int ReplyOpenAsStream(fuse_req_t req, uint64_t fh) {
  OpenOut out{};
  out.fh = fh;
  out.open_flags = kFopenDirectIo | kFopenNonseekable | kFopenStream;
  return fuse_reply_buf(req, reinterpret_cast<const char*>(&out), sizeof(out));
}

// Argument vectors for fuse_session_new / cuse_lowlevel_new.
class Args {
 public:
  void Add(const std::string& arg) { storage_.push_back(arg); }
  struct fuse_args Get() {
    pointers_.clear();
    for (std::string& s : storage_) pointers_.push_back(&s[0]);
    pointers_.push_back(nullptr);
    struct fuse_args args = FUSE_ARGS_INIT(static_cast<int>(storage_.size()),
                                           pointers_.data());
    return args;
  }

 private:
  std::vector<std::string> storage_;
  std::vector<char*> pointers_;
};

std::string RequireString(Napi::Object opts, const char* name) {
  Napi::Value value = opts.Get(name);
  if (!value.IsString())
    throw Napi::TypeError::New(opts.Env(),
                               std::string("options.") + name +
                                   " must be a string");
  return value.As<Napi::String>().Utf8Value();
}

uint64_t RequireId(const Napi::CallbackInfo& info, size_t index,
                   const char* name) {
  if (!info[index].IsNumber())
    throw Napi::TypeError::New(info.Env(),
                               std::string(name) + " must be a number");
  double value = info[index].As<Napi::Number>().DoubleValue();
  // Ids start at 1; anything else can never match and is simply unknown.
  if (!(value >= 1 && value <= 9007199254740991.0) ||
      std::floor(value) != value)
    return 0;
  return static_cast<uint64_t>(value);
}

}  // namespace

// ---- class definition and construction ------------------------------------

Napi::Function Session::DefineClass(Napi::Env env) {
  return ObjectWrap<Session>::DefineClass(
      env, "Session",
      {
          InstanceMethod<&Session::ReplyData>("replyData"),
          InstanceMethod<&Session::ReplyError>("replyError"),
          InstanceMethod<&Session::ReplyWrite>("replyWrite"),
          InstanceMethod<&Session::ReplyPoll>("replyPoll"),
          InstanceMethod<&Session::NotifyPoll>("notifyPoll"),
          InstanceMethod<&Session::DropPollHandle>("dropPollHandle"),
          InstanceMethod<&Session::Close>("close"),
          InstanceAccessor<&Session::GetFd>("fd"),
          InstanceAccessor<&Session::GetClosed>("isClosed"),
      });
}

Session::Session(const Napi::CallbackInfo& info) : ObjectWrap<Session>(info) {}

Session::~Session() { Teardown(); }

void Session::TakeHandlers(Napi::Object handlers) {
  auto take = [&](const char* name, Napi::FunctionReference& ref,
                  bool required) {
    Napi::Value value = handlers.Get(name);
    if (value.IsFunction()) {
      ref = Napi::Persistent(value.As<Napi::Function>());
    } else if (required) {
      throw Napi::TypeError::New(
          Env(), std::string("handlers.") + name + " must be a function");
    }
  };
  take("open", onOpen_, true);
  take("release", onRelease_, true);
  take("read", onRead_, true);
  take("write", onWrite_, true);
  take("poll", onPoll_, true);
  take("interrupt", onInterrupt_, true);
  take("statusText", onStatusText_, front_ == Front::kFuse);
  take("closed", onClosed_, true);
  handlers_ = Napi::Persistent(handlers);
}

Napi::Value Session::StartFuse(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString())
    throw Napi::TypeError::New(env, "mountDir must be a string");
  if (!info[1].IsObject())
    throw Napi::TypeError::New(env, "options must be an object");
  if (!info[2].IsObject())
    throw Napi::TypeError::New(env, "handlers must be an object");
  std::string mountDir = info[0].As<Napi::String>().Utf8Value();
  Napi::Object opts = info[1].As<Napi::Object>();
  Napi::Value fileMode = opts.Get("fileMode");
  if (!fileMode.IsNumber())
    throw Napi::TypeError::New(env, "options.fileMode must be a number");
  bool allowOther = opts.Get("allowOther").ToBoolean();
  bool debug = opts.Get("debug").ToBoolean();

  // Say plainly what is wrong with the mount point before libfuse does
  // (it only prints to stderr).
  struct stat st;
  if (stat(mountDir.c_str(), &st) != 0)
    throw SystemError(env, errno, "stat", mountDir);
  if (!S_ISDIR(st.st_mode)) throw SystemError(env, ENOTDIR, "mount", mountDir);

  Napi::Object object = GetAddonData(env).sessionClass.New({});
  Session* self = Session::Unwrap(object);
  self->front_ = Front::kFuse;
  self->fileMode_ = fileMode.As<Napi::Number>().Uint32Value() & 07777;
  self->ownerUid_ = geteuid();
  // The group owning `jobserver` (e.g. `jobserver`, with mode 0660); the daemon's own by default.
  Napi::Value controlLink = opts.Get("controlLink");
  if (controlLink.IsString()) self->controlLink_ = controlLink.As<Napi::String>().Utf8Value();
  Napi::Value fileGid = opts.Get("fileGid");
  self->ownerGid_ = fileGid.IsNumber() ? fileGid.As<Napi::Number>().Uint32Value() : getegid();
  clock_gettime(CLOCK_REALTIME, &self->startTime_);
  self->TakeHandlers(info[2].As<Napi::Object>());

  // libfuse parses these like a command line: mount options (fsname,
  // subtype, allow_other, default_permissions) go to mount(2); anything it
  // does not know makes fuse_session_new fail. default_permissions makes
  // the kernel enforce `fileMode`, which it otherwise leaves to us.
  Args args;
  args.Add("steve");
  args.Add("-o");
  args.Add("fsname=steve,subtype=steve,default_permissions");
  if (allowOther) {
    args.Add("-o");
    args.Add("allow_other");
  }
  if (debug) args.Add("-d");
  struct fuse_args fargs = args.Get();
  static const struct fuse_lowlevel_ops ops = MakeFuseOps();
  self->se_ = fuse_session_new(&fargs, &ops, sizeof(ops), self);
  fuse_opt_free_args(&fargs);
  if (self->se_ == nullptr)
    throw Napi::Error::New(env, "fuse_session_new failed (see stderr)");

  errno = 0;
  if (fuse_session_mount(self->se_, mountDir.c_str()) != 0) {
    int err = errno != 0 ? errno : EIO;
    self->Teardown();
    throw SystemError(env, err, "mount", mountDir);
  }
  self->mounted_ = true;
  self->Activate();
  return object;
}

Napi::Value Session::StartCuse(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject())
    throw Napi::TypeError::New(env, "options must be an object");
  if (!info[1].IsObject())
    throw Napi::TypeError::New(env, "handlers must be an object");
  Napi::Object opts = info[0].As<Napi::Object>();
  std::string devName = RequireString(opts, "devName");
  if (devName.empty() || devName.find('/') != std::string::npos ||
      devName.find('\0') != std::string::npos || devName == "." ||
      devName == "..")
    throw Napi::TypeError::New(env, "options.devName must be a plain name");
  bool debug = opts.Get("debug").ToBoolean();

  // Opening /dev/cuse queues CUSE_INIT; the device appears once we answer.
  int fd = open("/dev/cuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) throw SystemError(env, errno, "open", "/dev/cuse");

  Napi::Object object;
  Session* self;
  try {
    object = GetAddonData(env).sessionClass.New({});
    self = Session::Unwrap(object);
    self->front_ = Front::kCuse;
    self->TakeHandlers(info[1].As<Napi::Object>());
  } catch (...) {
    close(fd);
    throw;
  }

  Args args;
  args.Add("steve");
  if (debug) args.Add("-d");
  struct fuse_args fargs = args.Get();
  std::string devInfo = "DEVNAME=" + devName;
  const char* devInfoArgv[] = {devInfo.c_str()};
  struct cuse_info ci = {};
  ci.dev_info_argc = 1;
  ci.dev_info_argv = devInfoArgv;
  static const struct cuse_lowlevel_ops ops = MakeCuseOps();
  self->se_ = cuse_lowlevel_new(&fargs, &ci, &ops, self);
  fuse_opt_free_args(&fargs);
  if (self->se_ == nullptr) {
    close(fd);
    throw Napi::Error::New(env, "cuse_lowlevel_new failed (see stderr)");
  }
  // libfuse 3.14 adopts an already-open fd given as /dev/fd/N (and then
  // owns it). cuse_lowlevel_setup would also install signal handlers and
  // daemonize, which is why it is not used.
  std::string adopt = "/dev/fd/" + std::to_string(fd);
  if (fuse_session_mount(self->se_, adopt.c_str()) != 0) {
    close(fd);
    self->Teardown();
    throw Napi::Error::New(env, "cannot adopt the /dev/cuse descriptor");
  }
  self->Activate();

  // The kernel registers the device while processing our CUSE_INIT reply
  // and aborts the connection if it cannot (e.g. the name is taken).
  struct pollfd pfd = {fd, 0, 0};
  if (poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLERR) != 0) {
    self->finished_ = true;
    self->Teardown();
    self->Unref();
    throw Napi::Error::New(env, "the kernel refused CUSE device /dev/" +
                                    devName + " (is the name already in use?)");
  }
  return object;
}

// Answers the INIT request the kernel queued when the mount (or /dev/cuse)
// was opened, so the mount is usable as soon as start returns; then hands
// the fd to libuv.
void Session::Activate() {
  Napi::Env env = Env();
  int fd = fuse_session_fd(se_);
  ++dispatchDepth_;
  int res = fuse_session_receive_buf(se_, &buf_);
  if (res > 0) fuse_session_process_buf(se_, &buf_);
  --dispatchDepth_;
  if (res <= 0) {
    Teardown();
    throw SystemError(env, res < 0 ? -res : ENODEV, "read INIT");
  }

  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    int err = errno;
    Teardown();
    throw SystemError(env, err, "fcntl");
  }

  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  poll_ = new uv_poll_t;
  poll_->data = this;
  int uverr = uv_poll_init(loop, poll_, fd);
  if (uverr == 0) uverr = uv_poll_start(poll_, UV_READABLE, OnReadable);
  if (uverr != 0) {
    Teardown();
    throw SystemError(env, -uverr, "uv_poll_start");
  }
  asyncContext_ = std::make_unique<Napi::AsyncContext>(env, "steve:session");
  napi_add_env_cleanup_hook(env, OnEnvCleanup, this);
  cleanupHookAdded_ = true;
  // A live session must not be garbage collected: libuv and libfuse point
  // at it. Finish() drops this reference.
  Ref();
}

// ---- the event loop side --------------------------------------------------

void Session::OnReadable(uv_poll_t* handle, int status, int) {
  Session* self = static_cast<Session*>(handle->data);
  Napi::Env env = self->Env();
  self->Ref();  // stay alive until this function returns
  {
    JsScope scope(env, *self->asyncContext_);
    std::string reason = self->Drain();
    // POLLERR: the connection is gone; Drain normally saw ENODEV already.
    if (reason.empty() && status < 0 && !self->finished_)
      reason = std::string("error: ") + uv_strerror(status);
    if (!reason.empty()) self->Finish(reason, true);
  }
  if (self->finished_) self->asyncContext_.reset();
  self->Unref();
}

std::string Session::Drain() {
  ++dispatchDepth_;
  std::string reason;
  while (!finished_) {
    int res = fuse_session_receive_buf(se_, &buf_);
    if (res == -EAGAIN || res == -EINTR) break;
    // libfuse turns ENODEV (unmounted, or aborted through
    // /sys/fs/fuse/connections) into 0 and marks the session exited.
    if (res == 0 || fuse_session_exited(se_)) {
      reason = "unmounted";
      break;
    }
    if (res < 0) {
      reason = std::string("error: reading the FUSE device: ") +
               std::strerror(-res);
      break;
    }
    fuse_session_process_buf(se_, &buf_);
    DeliverInterrupts();
    if (closeRequested_) {
      reason = "closed";
      break;
    }
  }
  --dispatchDepth_;
  return reason;
}

void Session::OnInterrupt(uint64_t reqId) { interrupted_.push_back(reqId); }

void Session::DeliverInterrupts() {
  while (!interrupted_.empty() && !finished_) {
    uint64_t reqId = interrupted_.front();
    interrupted_.pop_front();
    if (pending_.count(reqId) == 0) continue;  // already answered
    Napi::HandleScope scope(Env());
    Call(onInterrupt_, {Napi::Number::New(Env(), static_cast<double>(reqId))});
  }
}

bool Session::Call(const Napi::FunctionReference& fn,
                   const std::initializer_list<napi_value>& args,
                   Napi::Value* result) {
  try {
    Napi::Value value = fn.Call(handlers_.Value(), args);
    if (result != nullptr) *result = value;
    return true;
  } catch (const Napi::Error& error) {
    ReportUncaught(Env(), error);
    return false;
  }
}

Napi::Object Session::Context(fuse_req_t req) {
  const struct fuse_ctx* ctx = fuse_req_ctx(req);
  Napi::Object object = Napi::Object::New(Env());
  object.Set("tid", Napi::Number::New(Env(), ctx->pid));
  object.Set("uid", Napi::Number::New(Env(), ctx->uid));
  object.Set("gid", Napi::Number::New(Env(), ctx->gid));
  return object;
}

// ---- the FUSE tree --------------------------------------------------------

bool Session::FillAttr(fuse_ino_t ino, struct stat* st) const {
  *st = {};
  st->st_ino = ino;
  st->st_uid = ownerUid_;
  st->st_gid = ownerGid_;
  st->st_atim = st->st_mtim = st->st_ctim = startTime_;
  switch (ino) {
    case kRootIno:
      st->st_mode = S_IFDIR | 0755;
      st->st_nlink = 2;
      return true;
    case kJobserverIno:
      st->st_mode = S_IFREG | fileMode_;
      st->st_nlink = 1;
      return true;
    case kStatusIno:
      // Size 0: the file is direct_io, so readers read until EOF anyway.
      st->st_mode = S_IFREG | 0444;
      st->st_nlink = 1;
      return true;
    case kControlLinkIno:
      // `control.sock` -> the control socket, which cannot live inside this mount.
      if (controlLink_.empty()) return false;
      st->st_mode = S_IFLNK | 0777;
      st->st_nlink = 1;
      st->st_size = static_cast<off_t>(controlLink_.size());
      return true;
    default:
      return false;
  }
}

void Session::OnLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fuse_ino_t ino = 0;
  if (parent == kRootIno && std::strcmp(name, kJobserverName) == 0)
    ino = kJobserverIno;
  if (parent == kRootIno && std::strcmp(name, kStatusName) == 0)
    ino = kStatusIno;
  if (parent == kRootIno && std::strcmp(name, kControlLinkName) == 0)
    ino = kControlLinkIno;
  struct fuse_entry_param entry = {};
  if (ino == 0 || !FillAttr(ino, &entry.attr)) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  entry.ino = ino;
  entry.attr_timeout = kAttrTimeoutSeconds;
  entry.entry_timeout = kAttrTimeoutSeconds;
  fuse_reply_entry(req, &entry);
}

void Session::OnGetattr(fuse_req_t req, fuse_ino_t ino) {
  struct stat st;
  if (!FillAttr(ino, &st)) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  fuse_reply_attr(req, &st, kAttrTimeoutSeconds);
}

void Session::OnReaddir(fuse_req_t req, fuse_ino_t ino, size_t size,
                        off_t offset) {
  if (ino != kRootIno) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  std::string listing;
  auto add = [&](const char* name, fuse_ino_t entryIno) {
    struct stat st;
    FillAttr(entryIno, &st);
    size_t need = fuse_add_direntry(req, nullptr, 0, name, nullptr, 0);
    size_t at = listing.size();
    listing.resize(at + need);
    // The last argument is the offset of the *next* entry.
    fuse_add_direntry(req, &listing[at], need, name, &st, listing.size());
  };
  add(".", kRootIno);
  add("..", kRootIno);
  add(kJobserverName, kJobserverIno);
  add(kStatusName, kStatusIno);
  if (!controlLink_.empty()) add(kControlLinkName, kControlLinkIno);
  ReplyBufLimited(req, listing, size, offset);
}

void Session::OnReadlink(fuse_req_t req, fuse_ino_t ino) {
  if (ino != kControlLinkIno || controlLink_.empty()) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  fuse_reply_readlink(req, controlLink_.c_str());
}

// ---- file operations (FUSE and CUSE) --------------------------------------

void Session::OnOpen(fuse_req_t req, fuse_ino_t ino,
                     struct fuse_file_info* fi) {
  Napi::HandleScope scope(Env());
  FileKind kind;
  if (ino == kJobserverIno) {
    kind = FileKind::kJobserver;
  } else if (ino == kStatusIno) {
    kind = FileKind::kStatus;
    // default_permissions stops others, but root passes any mode check.
    if ((fi->flags & O_ACCMODE) != O_RDONLY) {
      fuse_reply_err(req, EACCES);
      return;
    }
  } else {
    fuse_reply_err(req, ino == kRootIno ? EISDIR : ENOENT);
    return;
  }

  uint64_t fileId = nextFileId_++;
  OpenFile file{kind, std::string()};
  Napi::Env env = Env();
  if (kind == FileKind::kStatus) {
    Napi::Value text;
    // Who opens it decides whose command lines it shows.
    if (!Call(onStatusText_, {Context(req)}, &text) || !text.IsString()) {
      fuse_reply_err(req, EIO);
      return;
    }
    file.statusSnapshot = text.As<Napi::String>().Utf8Value();
  }
  // JS learns about the file before any read on it can arrive.
  if (!Call(onOpen_,
            {Napi::Number::New(env, static_cast<double>(fileId)), Context(req),
             Napi::Number::New(env, fi->flags),
             Napi::String::New(env, kind == FileKind::kStatus
                                        ? kStatusName
                                        : kJobserverName)})) {
    fuse_reply_err(req, EIO);
    return;
  }
  files_.emplace(fileId, std::move(file));
  fi->fh = fileId;
  // direct_io: every read and write reaches us with the caller's size, no
  // page cache. nonseekable: a jobserver is a stream, like a pipe.
  fi->direct_io = 1;
  if (kind == FileKind::kJobserver) fi->nonseekable = 1;
  int sent = kind == FileKind::kJobserver ? ReplyOpenAsStream(req, fileId)
                                          : fuse_reply_open(req, fi);
  if (sent == -ENOENT) {
    // The opener was interrupted meanwhile; the kernel will never send
    // RELEASE for this file, so do it here.
    files_.erase(fileId);
    Call(onRelease_, {Napi::Number::New(env, static_cast<double>(fileId)),
                      Context(req)});
  }
}

void Session::OnRelease(fuse_req_t req, struct fuse_file_info* fi) {
  Napi::HandleScope scope(Env());
  uint64_t fileId = fi->fh;
  bool known = files_.erase(fileId) > 0;
  // Reply first: RELEASE cannot fail, and the kernel does not wait for it.
  Napi::Object ctx = Context(req);
  fuse_reply_err(req, 0);
  if (known)
    Call(onRelease_,
         {Napi::Number::New(Env(), static_cast<double>(fileId)), ctx});
}

void Session::OnRead(fuse_req_t req, size_t size, off_t offset,
                     struct fuse_file_info* fi) {
  Napi::HandleScope scope(Env());
  auto file = files_.find(fi->fh);
  if (file == files_.end()) {
    fuse_reply_err(req, EBADF);
    return;
  }
  if (file->second.kind == FileKind::kStatus) {
    ReplyBufLimited(req, file->second.statusSnapshot, size, offset);
    return;
  }
  uint64_t reqId = nextReqId_++;
  pending_.emplace(reqId, PendingRequest{req, RequestKind::kRead, size});
  Napi::Env env = Env();
  // The hot path: the caller as plain numbers, no context object (reads and
  // writes are most of the traffic; see SessionHandlers.read).
  const struct fuse_ctx* ctx = fuse_req_ctx(req);
  Napi::Value answer;
  bool ok = Call(onRead_,
                 {Napi::Number::New(env, static_cast<double>(reqId)),
                  Napi::Number::New(env, static_cast<double>(fi->fh)),
                  Napi::Number::New(env, ctx->pid),
                  Napi::Number::New(env, ctx->uid),
                  Napi::Number::New(env, static_cast<double>(size)),
                  Napi::Number::New(env, fi->flags)},
                 &answer);
  auto still = pending_.find(reqId);
  if (still == pending_.end()) return;
  if (!ok) {  // the handler threw and will not answer
    pending_.erase(still);
    fuse_reply_err(req, EIO);
    return;
  }
  if (answer.IsNumber()) {  // answered by the return value
    pending_.erase(still);
    ReplyReadNow(req, size, answer.As<Napi::Number>().DoubleValue());
    return;
  }
  fuse_req_interrupt_func(req, OnRequestInterrupted,
                          reinterpret_cast<void*>(static_cast<uintptr_t>(reqId)));
}

// A read answered by its handler's return value (SessionHandlers.read): a
// byte 0..255, kReplyEmpty for zero bytes, or -errno. Anything else is the
// handler's bug: reported like a throw, and the request gets EIO.
void Session::ReplyReadNow(fuse_req_t req, size_t size, double answer) {
  if (answer >= 0 && answer <= 255 && std::floor(answer) == answer && size >= 1) {
    char byte = static_cast<char>(static_cast<int>(answer));
    fuse_reply_buf(req, &byte, 1);
  } else if (answer == kReplyEmpty) {
    fuse_reply_buf(req, nullptr, 0);
  } else if (answer <= -1 && answer > -4096 && std::floor(answer) == answer) {
    fuse_reply_err(req, static_cast<int>(-answer));
  } else {
    ReportUncaught(Env(), Napi::RangeError::New(
                              Env(), "read handler returned " + std::to_string(answer) +
                                         " for a read of " + std::to_string(size) +
                                         " bytes: a byte 0..255 (size >= 1), 256 for "
                                         "none, -errno, or undefined"));
    fuse_reply_err(req, EIO);
  }
}

// A write answered by its handler's return value: the count taken
// (0..size) or -errno; anything else as in ReplyReadNow.
void Session::ReplyWriteNow(fuse_req_t req, size_t size, double answer) {
  if (answer >= 0 && answer <= static_cast<double>(size) && std::floor(answer) == answer) {
    fuse_reply_write(req, static_cast<size_t>(answer));
  } else if (answer <= -1 && answer > -4096 && std::floor(answer) == answer) {
    fuse_reply_err(req, static_cast<int>(-answer));
  } else {
    ReportUncaught(Env(), Napi::RangeError::New(
                              Env(), "write handler returned " + std::to_string(answer) +
                                         " for a write of " + std::to_string(size) +
                                         " bytes: a count 0..size, -errno, or undefined"));
    fuse_reply_err(req, EIO);
  }
}

void Session::OnWrite(fuse_req_t req, const char* data, size_t size,
                      struct fuse_file_info* fi) {
  Napi::HandleScope scope(Env());
  auto file = files_.find(fi->fh);
  if (file == files_.end() || file->second.kind != FileKind::kJobserver) {
    fuse_reply_err(req, EBADF);
    return;
  }
  uint64_t reqId = nextReqId_++;
  pending_.emplace(reqId, PendingRequest{req, RequestKind::kWrite, size});
  Napi::Env env = Env();
  // Only the count matters: a token is a token, whatever byte was written.
  (void)data;
  const struct fuse_ctx* ctx = fuse_req_ctx(req);
  Napi::Value answer;
  bool ok = Call(onWrite_,
                 {Napi::Number::New(env, static_cast<double>(reqId)),
                  Napi::Number::New(env, static_cast<double>(fi->fh)),
                  Napi::Number::New(env, ctx->pid),
                  Napi::Number::New(env, ctx->uid),
                  Napi::Number::New(env, static_cast<double>(size))},
                 &answer);
  auto still = pending_.find(reqId);
  if (still == pending_.end()) return;
  if (!ok) {
    pending_.erase(still);
    fuse_reply_err(req, EIO);
    return;
  }
  if (answer.IsNumber()) {  // answered by the return value
    pending_.erase(still);
    ReplyWriteNow(req, size, answer.As<Napi::Number>().DoubleValue());
    return;
  }
  fuse_req_interrupt_func(req, OnRequestInterrupted,
                          reinterpret_cast<void*>(static_cast<uintptr_t>(reqId)));
}

void Session::OnPoll(fuse_req_t req, struct fuse_file_info* fi,
                     struct fuse_pollhandle* ph) {
  Napi::HandleScope scope(Env());
  auto file = files_.find(fi->fh);
  if (file == files_.end() || file->second.kind != FileKind::kJobserver) {
    // `status` is a snapshot: always readable.
    if (ph != nullptr) fuse_pollhandle_destroy(ph);
    fuse_reply_poll(req, POLLIN | POLLRDNORM);
    return;
  }
  uint64_t pollHandleId = 0;
  if (ph != nullptr) {
    pollHandleId = nextPollHandleId_++;
    pollHandles_.emplace(pollHandleId, ph);
  }
  uint64_t reqId = nextReqId_++;
  pending_.emplace(reqId, PendingRequest{req, RequestKind::kPoll, 0});
  Napi::Env env = Env();
  bool ok = Call(onPoll_,
                 {Napi::Number::New(env, static_cast<double>(reqId)),
                  Napi::Number::New(env, static_cast<double>(fi->fh)),
                  Context(req),
                  Napi::Number::New(env, static_cast<double>(pollHandleId)),
                  Napi::Number::New(env, fi->poll_events)});
  auto still = pending_.find(reqId);
  if (still == pending_.end()) return;
  if (!ok) {
    pending_.erase(still);
    fuse_reply_err(req, EIO);
    return;
  }
  fuse_req_interrupt_func(req, OnRequestInterrupted,
                          reinterpret_cast<void*>(static_cast<uintptr_t>(reqId)));
}

// ---- replies from JS ------------------------------------------------------

Session::PendingRequest* Session::FindPending(const Napi::CallbackInfo& info,
                                              uint64_t* reqId) {
  *reqId = RequireId(info, 0, "reqId");
  auto it = pending_.find(*reqId);
  return it == pending_.end() ? nullptr : &it->second;
}

Napi::Value Session::ReplyData(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[1].IsBuffer())
    throw Napi::TypeError::New(env, "data must be a Buffer");
  uint64_t reqId;
  PendingRequest* pending = FindPending(info, &reqId);
  if (pending == nullptr) return Napi::Boolean::New(env, false);
  if (pending->kind != RequestKind::kRead)
    throw Napi::TypeError::New(env, "replyData: request " +
                                        std::to_string(reqId) +
                                        " is not a read");
  Napi::Buffer<char> data = info[1].As<Napi::Buffer<char>>();
  // The kernel would reject a longer reply with EIO; the bytes (tokens)
  // would be lost. Refuse and keep the request pending.
  if (data.Length() > pending->sizeBytes)
    throw Napi::RangeError::New(
        env, "replyData: " + std::to_string(data.Length()) +
                 " bytes for a read of " + std::to_string(pending->sizeBytes));
  fuse_req_t req = pending->req;
  pending_.erase(reqId);
  fuse_reply_buf(req, data.Data(), data.Length());
  return Napi::Boolean::New(env, true);
}

Napi::Value Session::ReplyError(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[1].IsNumber())
    throw Napi::TypeError::New(env, "errno must be a number");
  int errnum = info[1].As<Napi::Number>().Int32Value();
  if (errnum <= 0 || errnum >= 4096)
    throw Napi::RangeError::New(env, "errno must be a positive errno value");
  uint64_t reqId;
  PendingRequest* pending = FindPending(info, &reqId);
  if (pending == nullptr) return Napi::Boolean::New(env, false);
  fuse_req_t req = pending->req;
  pending_.erase(reqId);
  fuse_reply_err(req, errnum);
  return Napi::Boolean::New(env, true);
}

Napi::Value Session::ReplyWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[1].IsNumber())
    throw Napi::TypeError::New(env, "countBytes must be a number");
  double count = info[1].As<Napi::Number>().DoubleValue();
  uint64_t reqId;
  PendingRequest* pending = FindPending(info, &reqId);
  if (pending == nullptr) return Napi::Boolean::New(env, false);
  if (pending->kind != RequestKind::kWrite)
    throw Napi::TypeError::New(env, "replyWrite: request " +
                                        std::to_string(reqId) +
                                        " is not a write");
  if (!(count >= 0 && count <= static_cast<double>(pending->sizeBytes)) ||
      std::floor(count) != count)
    throw Napi::RangeError::New(
        env, "replyWrite: count must be an integer in 0.." +
                 std::to_string(pending->sizeBytes));
  fuse_req_t req = pending->req;
  pending_.erase(reqId);
  fuse_reply_write(req, static_cast<size_t>(count));
  return Napi::Boolean::New(env, true);
}

Napi::Value Session::ReplyPoll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[1].IsNumber())
    throw Napi::TypeError::New(env, "revents must be a number");
  uint32_t revents = info[1].As<Napi::Number>().Uint32Value();
  uint64_t reqId;
  PendingRequest* pending = FindPending(info, &reqId);
  if (pending == nullptr) return Napi::Boolean::New(env, false);
  if (pending->kind != RequestKind::kPoll)
    throw Napi::TypeError::New(env, "replyPoll: request " +
                                        std::to_string(reqId) +
                                        " is not a poll");
  fuse_req_t req = pending->req;
  pending_.erase(reqId);
  fuse_reply_poll(req, revents);
  return Napi::Boolean::New(env, true);
}

Napi::Value Session::NotifyPoll(const Napi::CallbackInfo& info) {
  uint64_t id = RequireId(info, 0, "pollHandleId");
  auto it = pollHandles_.find(id);
  if (it == pollHandles_.end()) return Napi::Boolean::New(info.Env(), false);
  struct fuse_pollhandle* ph = it->second;
  pollHandles_.erase(it);
  fuse_lowlevel_notify_poll(ph);
  fuse_pollhandle_destroy(ph);
  return Napi::Boolean::New(info.Env(), true);
}

Napi::Value Session::DropPollHandle(const Napi::CallbackInfo& info) {
  uint64_t id = RequireId(info, 0, "pollHandleId");
  auto it = pollHandles_.find(id);
  if (it == pollHandles_.end()) return Napi::Boolean::New(info.Env(), false);
  fuse_pollhandle_destroy(it->second);
  pollHandles_.erase(it);
  return Napi::Boolean::New(info.Env(), true);
}

Napi::Value Session::Close(const Napi::CallbackInfo& info) {
  if (!finished_) {
    // Called from a handler while libfuse is dispatching: finish once the
    // current batch is done (tearing down now would free the session under
    // libfuse's feet).
    if (dispatchDepth_ > 0) {
      closeRequested_ = true;
    } else {
      Finish("closed", false);
      asyncContext_.reset();
    }
  }
  return info.Env().Undefined();
}

Napi::Value Session::GetFd(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(),
                           se_ != nullptr ? fuse_session_fd(se_) : -1);
}

Napi::Value Session::GetClosed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), finished_ || closeRequested_);
}

// ---- the end --------------------------------------------------------------

void Session::Finish(const std::string& reason, bool reportToUncaught) {
  if (finished_) return;
  finished_ = true;
  Teardown();
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Napi::Function closed = onClosed_.Value();
  Napi::Object receiver = handlers_.Value();
  for (Napi::FunctionReference* ref :
       {&onOpen_, &onRelease_, &onRead_, &onWrite_, &onPoll_, &onInterrupt_,
        &onStatusText_, &onClosed_})
    ref->Reset();
  handlers_.Reset();
  Unref();  // balances Activate(); the object may now be collected
  if (closed.IsEmpty()) return;
  if (reportToUncaught) {
    try {
      closed.Call(receiver, {Napi::String::New(env, reason)});
    } catch (const Napi::Error& error) {
      ReportUncaught(env, error);
    }
  } else {
    closed.Call(receiver, {Napi::String::New(env, reason)});
  }
}

void Session::Teardown() {
  if (poll_ != nullptr) {
    uv_poll_stop(poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* handle) {
      delete reinterpret_cast<uv_poll_t*>(handle);
    });
    poll_ = nullptr;
  }
  // Every request gets exactly one reply, even on the way out.
  for (auto& entry : pending_) fuse_reply_err(entry.second.req, EIO);
  pending_.clear();
  interrupted_.clear();
  for (auto& entry : pollHandles_) fuse_pollhandle_destroy(entry.second);
  pollHandles_.clear();
  files_.clear();
  if (se_ != nullptr) {
    // Closes the fd first, then a lazy umount (as root: umount2 MNT_DETACH);
    // nothing to unmount after an external umount.
    if (mounted_) fuse_session_unmount(se_);
    mounted_ = false;
    fuse_session_destroy(se_);
    se_ = nullptr;
  }
  std::free(buf_.mem);
  buf_.mem = nullptr;
  if (cleanupHookAdded_) {
    cleanupHookAdded_ = false;
    napi_remove_env_cleanup_hook(Env(), OnEnvCleanup, this);
  }
}

// The environment is going away (process exit, worker exit) with the session
// still open: unmount rather than leave a dead mount behind. No JS here.
void Session::OnEnvCleanup(void* arg) {
  Session* self = static_cast<Session*>(arg);
  self->cleanupHookAdded_ = false;
  self->finished_ = true;
  self->Teardown();
  // The async context and references die with the environment.
  self->asyncContext_.release();
}

}  // namespace steve
