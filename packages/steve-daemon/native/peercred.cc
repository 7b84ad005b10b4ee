// peerCredentials: SO_PEERCRED of a connected unix socket, i.e. who is on
// the other end of the control socket (pid, uid, gid as of connect()).
#include <sys/socket.h>
#include <sys/types.h>

#include "addon.h"
#include "common.h"

namespace steve {

Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber())
    throw Napi::TypeError::New(env, "socketFd must be a number");
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct ucred cred = {};
  socklen_t length = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0)
    throw SystemError(env, errno, "getsockopt(SO_PEERCRED)");
  Napi::Object result = Napi::Object::New(env);
  result.Set("pid", Napi::Number::New(env, cred.pid));
  result.Set("uid", Napi::Number::New(env, cred.uid));
  result.Set("gid", Napi::Number::New(env, cred.gid));
  return result;
}

}  // namespace steve
