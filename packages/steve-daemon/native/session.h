// One libfuse3 low-level session (a FUSE mount or a CUSE device) driven from
// the libuv loop of the JS thread. See README.md for the request lifecycle.
#pragma once

#define FUSE_USE_VERSION 314

#include <fuse_lowlevel.h>
#include <napi.h>
#include <uv.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>

namespace steve {

class Session : public Napi::ObjectWrap<Session> {
 public:
  /// Defines the JS class (never exported: sessions come from startFuse /
  /// startCuse).
  static Napi::Function DefineClass(Napi::Env env);

  /// `startFuse(mountDir, { allowOther, fileMode, debug? }, handlers)`.
  static Napi::Value StartFuse(const Napi::CallbackInfo& info);
  /// `startCuse({ devName, debug? }, handlers)`.
  static Napi::Value StartCuse(const Napi::CallbackInfo& info);

  explicit Session(const Napi::CallbackInfo& info);
  ~Session() override;

  // libfuse operation callbacks (plain C entry points call these).
  void OnLookup(fuse_req_t req, fuse_ino_t parent, const char* name);
  void OnGetattr(fuse_req_t req, fuse_ino_t ino);
  void OnReadlink(fuse_req_t req, fuse_ino_t ino);
  void OnReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset);
  void OnOpen(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi);
  void OnRelease(fuse_req_t req, struct fuse_file_info* fi);
  void OnRead(fuse_req_t req, size_t size, off_t offset,
              struct fuse_file_info* fi);
  void OnWrite(fuse_req_t req, const char* data, size_t size,
               struct fuse_file_info* fi);
  void OnPoll(fuse_req_t req, struct fuse_file_info* fi,
              struct fuse_pollhandle* ph);
  void OnInterrupt(uint64_t reqId);

 private:
  enum class Front { kFuse, kCuse };
  enum class FileKind { kJobserver, kStatus };
  enum class RequestKind { kRead, kWrite, kPoll };

  /// A request handed to JS and not yet replied to.
  struct PendingRequest {
    fuse_req_t req;
    RequestKind kind;
    size_t sizeBytes;  // read: bytes asked for; write: bytes written
  };

  /// An open file description (one FUSE/CUSE OPEN), keyed by fi->fh.
  struct OpenFile {
    FileKind kind;
    std::string statusSnapshot;  // `status` only: served by offset
  };

  // JS methods.
  Napi::Value ReplyData(const Napi::CallbackInfo& info);
  Napi::Value ReplyError(const Napi::CallbackInfo& info);
  Napi::Value ReplyWrite(const Napi::CallbackInfo& info);
  Napi::Value ReplyPoll(const Napi::CallbackInfo& info);
  Napi::Value NotifyPoll(const Napi::CallbackInfo& info);
  Napi::Value DropPollHandle(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value GetClosed(const Napi::CallbackInfo& info);

  void TakeHandlers(Napi::Object handlers);
  void Activate();
  static void OnReadable(uv_poll_t* handle, int status, int events);
  /// Receives and dispatches requests until the fd has none (-EAGAIN).
  /// Returns the reason the session ended, or an empty string.
  std::string Drain();
  void DeliverInterrupts();
  /// Ends the session: native teardown, then `closed(reason)`.
  void Finish(const std::string& reason, bool reportToUncaught);
  /// Frees every native resource; never calls JS. Idempotent.
  void Teardown();
  static void OnEnvCleanup(void* arg);

  /// Looks up a pending request for a reply from JS; nullptr when unknown.
  PendingRequest* FindPending(const Napi::CallbackInfo& info,
                              uint64_t* reqId);
  Napi::Object Context(fuse_req_t req);
  /// Calls a JS handler; an exception becomes an uncaughtException.
  bool Call(const Napi::FunctionReference& fn,
            const std::initializer_list<napi_value>& args,
            Napi::Value* result = nullptr);
  /// Replies to a read or write its handler answered by returning a number.
  void ReplyReadNow(fuse_req_t req, size_t size, double answer);
  void ReplyWriteNow(fuse_req_t req, size_t size, double answer);
  /// A read handler's return value for a zero-byte reply (bytes are 0..255).
  static constexpr double kReplyEmpty = 256;
  void ReplyAttr(fuse_req_t req, fuse_ino_t ino);
  bool FillAttr(fuse_ino_t ino, struct stat* st) const;

  Front front_ = Front::kFuse;
  struct fuse_session* se_ = nullptr;
  struct fuse_buf buf_ = {};
  uv_poll_t* poll_ = nullptr;
  std::unique_ptr<Napi::AsyncContext> asyncContext_;
  bool mounted_ = false;
  bool finished_ = false;
  bool cleanupHookAdded_ = false;
  int dispatchDepth_ = 0;
  bool closeRequested_ = false;

  // FUSE tree.
  mode_t fileMode_ = 0666;
  uid_t ownerUid_ = 0;
  gid_t ownerGid_ = 0;
  std::string controlLink_;  // FUSE: target of the `control.sock` symlink, empty for none
  struct timespec startTime_ = {};

  uint64_t nextFileId_ = 1;
  uint64_t nextReqId_ = 1;
  uint64_t nextPollHandleId_ = 1;
  std::unordered_map<uint64_t, OpenFile> files_;
  std::unordered_map<uint64_t, PendingRequest> pending_;
  std::unordered_map<uint64_t, struct fuse_pollhandle*> pollHandles_;
  std::deque<uint64_t> interrupted_;

  Napi::ObjectReference handlers_;
  Napi::FunctionReference onOpen_, onRelease_, onRead_, onWrite_, onPoll_,
      onInterrupt_, onStatusText_, onClosed_;
};

}  // namespace steve
