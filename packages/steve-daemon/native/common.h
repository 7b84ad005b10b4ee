// Small helpers shared by the addon's files: system errors shaped like
// Node's own (code, errno, syscall), and a scope for calling into JS from a
// libuv callback.
#pragma once

#include <napi.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace steve {

/// An Error like the ones `node:fs` throws: `code` ("ENOENT"), positive
/// `errno`, `syscall`, and optionally `path`.
inline Napi::Error SystemError(Napi::Env env, int errnum, const char* syscall,
                               const std::string& path = std::string()) {
  std::string code = uv_err_name(-errnum);
  std::string message = code + ": " + std::strerror(errnum) + ", " + syscall;
  if (!path.empty()) message += " '" + path + "'";
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  error.Set("errno", Napi::Number::New(env, errnum));
  error.Set("syscall", Napi::String::New(env, syscall));
  if (!path.empty()) error.Set("path", Napi::String::New(env, path));
  return error;
}

/// Reports an exception thrown by a JS callback that has no JS caller to
/// receive it (we are inside a libuv callback): it becomes an
/// `uncaughtException`, exactly like a throwing EventEmitter listener.
inline void ReportUncaught(Napi::Env env, const Napi::Error& error) {
  napi_fatal_exception(env, error.Value());
}

/// Everything needed to call JS from a libuv callback: a handle scope plus a
/// callback scope, so that promise jobs and `process.nextTick` callbacks
/// queued by the handlers run when the scope closes, as they would after any
/// other I/O callback.
class JsScope {
 public:
  JsScope(Napi::Env env, Napi::AsyncContext& context)
      : handles_(env), callback_(env, context) {}

 private:
  Napi::HandleScope handles_;
  Napi::CallbackScope callback_;
};

}  // namespace steve
