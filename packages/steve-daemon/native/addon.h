// Per-environment state of the addon (one per Node main thread or worker).
#pragma once

#include <napi.h>

namespace steve {

struct AddonData {
  Napi::FunctionReference sessionClass;
  Napi::FunctionReference pidWatchClass;
  Napi::FunctionReference pathWatchClass;
};

inline AddonData& GetAddonData(Napi::Env env) {
  return *env.GetInstanceData<AddonData>();
}

// Exported functions, one file each.
Napi::Function DefinePidWatchClass(Napi::Env env);
Napi::Value WatchPid(const Napi::CallbackInfo& info);
Napi::Value PeerCredentials(const Napi::CallbackInfo& info);
Napi::Function DefinePathWatchClass(Napi::Env env);
Napi::Value WatchPath(const Napi::CallbackInfo& info);
Napi::Value BytesReadable(const Napi::CallbackInfo& info);
Napi::Value PollNow(const Napi::CallbackInfo& info);
Napi::Object InotifyEvents(Napi::Env env);

}  // namespace steve
