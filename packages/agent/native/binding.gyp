{
  "targets": [
    {
      "target_name": "dune_native",
      "sources": ["src/dune_native.c", "src/dune_io.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
      "libraries": ["-lpthread"]
    }
  ]
}
