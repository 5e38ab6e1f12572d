
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/core/common.c" "CMakeFiles/hg_core.dir/core/common.c.o" "gcc" "CMakeFiles/hg_core.dir/core/common.c.o.d"
  "/work/main/core/config.c" "CMakeFiles/hg_core.dir/core/config.c.o" "gcc" "CMakeFiles/hg_core.dir/core/config.c.o.d"
  "/work/main/core/http_server_stub.c" "CMakeFiles/hg_core.dir/core/http_server_stub.c.o" "gcc" "CMakeFiles/hg_core.dir/core/http_server_stub.c.o.d"
  "/work/main/core/log.c" "CMakeFiles/hg_core.dir/core/log.c.o" "gcc" "CMakeFiles/hg_core.dir/core/log.c.o.d"
  "/work/main/core/router.c" "CMakeFiles/hg_core.dir/core/router.c.o" "gcc" "CMakeFiles/hg_core.dir/core/router.c.o.d"
  "/work/main/core/schema.c" "CMakeFiles/hg_core.dir/core/schema.c.o" "gcc" "CMakeFiles/hg_core.dir/core/schema.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/main/build/CMakeFiles/llhttp.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
