{
  "targets": [
    {
      "target_name": "steve_native",
      "sources": [
        "native/addon.cc",
        "native/session.cc",
        "native/pidfd.cc",
        "native/peercred.cc",
        "native/inotify.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(pkg-config --cflags-only-I fuse3 | sed 's/-I//g')"
      ],
      "libraries": ["<!@(pkg-config --libs fuse3)"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"]
    }
  ]
}
