// peerCredentials: SO_PEERCRED and SO_PEERGROUPS of a connected unix socket,
// i.e. who is on the other end of the control socket: pid, uid, gid and the
// supplementary groups, all as of connect(). The groups come from the kernel
// (Linux >= 4.13), not from /proc/<pid>/status later, where a reused pid
// would answer for another process.
#include <sys/socket.h>
#include <sys/types.h>

#include <vector>

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
  std::vector<gid_t> groups(64);
  socklen_t groupsLength = groups.size() * sizeof(gid_t);
  int status = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &groupsLength);
  if (status != 0 && errno == ERANGE) {
    // groupsLength now says how much room the groups need.
    groups.resize(groupsLength / sizeof(gid_t) + 1);
    groupsLength = groups.size() * sizeof(gid_t);
    status = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &groupsLength);
  }
  if (status != 0) throw SystemError(env, errno, "getsockopt(SO_PEERGROUPS)");
  Napi::Array list = Napi::Array::New(env);
  for (size_t i = 0; i < groupsLength / sizeof(gid_t); i += 1)
    list.Set(static_cast<uint32_t>(i), Napi::Number::New(env, groups[i]));
  result.Set("groups", list);
  return result;
}

}  // namespace steve
