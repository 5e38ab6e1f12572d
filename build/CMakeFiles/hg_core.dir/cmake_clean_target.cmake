file(REMOVE_RECURSE
  "libhg_core.a"
)
