{
  "targets": [
    {
      "target_name": "dune_native",
      "sources": ["src/dune_native.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
      "libraries": ["-lpthread"]
    }
  ]
}
