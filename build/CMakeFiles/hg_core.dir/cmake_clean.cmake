file(REMOVE_RECURSE
  "CMakeFiles/hg_core.dir/core/common.c.o"
  "CMakeFiles/hg_core.dir/core/common.c.o.d"
  "CMakeFiles/hg_core.dir/core/config.c.o"
  "CMakeFiles/hg_core.dir/core/config.c.o.d"
  "CMakeFiles/hg_core.dir/core/http_server_stub.c.o"
  "CMakeFiles/hg_core.dir/core/http_server_stub.c.o.d"
  "CMakeFiles/hg_core.dir/core/log.c.o"
  "CMakeFiles/hg_core.dir/core/log.c.o.d"
  "CMakeFiles/hg_core.dir/core/router.c.o"
  "CMakeFiles/hg_core.dir/core/router.c.o.d"
  "CMakeFiles/hg_core.dir/core/schema.c.o"
  "CMakeFiles/hg_core.dir/core/schema.c.o.d"
  "libhg_core.a"
  "libhg_core.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/hg_core.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
