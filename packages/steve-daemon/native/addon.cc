// Module init: the addon's exports. All policy lives in TypeScript
// (src/native/addon.ts describes the types).
#include <poll.h>

#include "addon.h"
#include "session.h"

namespace steve {
namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  AddonData* data = new AddonData();
  data->sessionClass = Napi::Persistent(Session::DefineClass(env));
  data->pidWatchClass = Napi::Persistent(DefinePidWatchClass(env));
  data->pathWatchClass = Napi::Persistent(DefinePathWatchClass(env));
  env.SetInstanceData(data);

  exports.Set("startFuse", Napi::Function::New<Session::StartFuse>(env));
  exports.Set("startCuse", Napi::Function::New<Session::StartCuse>(env));
  exports.Set("watchPid", Napi::Function::New<WatchPid>(env));
  exports.Set("peerCredentials", Napi::Function::New<PeerCredentials>(env));
  exports.Set("watchPath", Napi::Function::New<WatchPath>(env));
  exports.Set("bytesReadable", Napi::Function::New<BytesReadable>(env));
  exports.Set("pollNow", Napi::Function::New<PollNow>(env));
  exports.Set("inotifyEvents", InotifyEvents(env));

  // poll(2) bits as this platform defines them, for replyPoll.
  Napi::Object poll = Napi::Object::New(env);
  poll.Set("POLLIN", POLLIN);
  poll.Set("POLLPRI", POLLPRI);
  poll.Set("POLLOUT", POLLOUT);
  poll.Set("POLLERR", POLLERR);
  poll.Set("POLLHUP", POLLHUP);
  poll.Set("POLLRDNORM", POLLRDNORM);
  poll.Set("POLLWRNORM", POLLWRNORM);
  exports.Set("pollEvents", poll);
  exports.Set("libfuseVersion", Napi::Number::New(env, fuse_version()));
  return exports;
}

}  // namespace
}  // namespace steve

static Napi::Object InitSteveNative(Napi::Env env, Napi::Object exports) {
  return steve::Init(env, exports);
}

NODE_API_MODULE(steve_native, InitSteveNative)
