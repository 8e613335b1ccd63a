# The bounce copy's Node-API addon (src/memory/native/bounce-copy.c), built by `npm ci` with
# node-gyp into build/Release/bounce_copy.node. If it does not build, the project still installs and
# runs: the copies use TypedArray.set (src/memory/copy.ts), and `npm run bench` says which path ran.
{
  "targets": [
    {
      "target_name": "bounce_copy",
      "sources": ["src/memory/native/bounce-copy.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
