
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/core/api_auth.c" "CMakeFiles/hg_core.dir/core/api_auth.c.o" "gcc" "CMakeFiles/hg_core.dir/core/api_auth.c.o.d"
  "/work/main/core/api_common.c" "CMakeFiles/hg_core.dir/core/api_common.c.o" "gcc" "CMakeFiles/hg_core.dir/core/api_common.c.o.d"
  "/work/main/core/api_webhooks.c" "CMakeFiles/hg_core.dir/core/api_webhooks.c.o" "gcc" "CMakeFiles/hg_core.dir/core/api_webhooks.c.o.d"
  "/work/main/core/app.c" "CMakeFiles/hg_core.dir/core/app.c.o" "gcc" "CMakeFiles/hg_core.dir/core/app.c.o.d"
  "/work/main/core/common.c" "CMakeFiles/hg_core.dir/core/common.c.o" "gcc" "CMakeFiles/hg_core.dir/core/common.c.o.d"
  "/work/main/core/config.c" "CMakeFiles/hg_core.dir/core/config.c.o" "gcc" "CMakeFiles/hg_core.dir/core/config.c.o.d"
  "/work/main/core/crypto.c" "CMakeFiles/hg_core.dir/core/crypto.c.o" "gcc" "CMakeFiles/hg_core.dir/core/crypto.c.o.d"
  "/work/main/core/event_types.c" "CMakeFiles/hg_core.dir/core/event_types.c.o" "gcc" "CMakeFiles/hg_core.dir/core/event_types.c.o.d"
  "/work/main/core/http_server_stub.c" "CMakeFiles/hg_core.dir/core/http_server_stub.c.o" "gcc" "CMakeFiles/hg_core.dir/core/http_server_stub.c.o.d"
  "/work/main/core/ids.c" "CMakeFiles/hg_core.dir/core/ids.c.o" "gcc" "CMakeFiles/hg_core.dir/core/ids.c.o.d"
  "/work/main/core/keys.c" "CMakeFiles/hg_core.dir/core/keys.c.o" "gcc" "CMakeFiles/hg_core.dir/core/keys.c.o.d"
  "/work/main/core/log.c" "CMakeFiles/hg_core.dir/core/log.c.o" "gcc" "CMakeFiles/hg_core.dir/core/log.c.o.d"
  "/work/main/core/router.c" "CMakeFiles/hg_core.dir/core/router.c.o" "gcc" "CMakeFiles/hg_core.dir/core/router.c.o.d"
  "/work/main/core/schema.c" "CMakeFiles/hg_core.dir/core/schema.c.o" "gcc" "CMakeFiles/hg_core.dir/core/schema.c.o.d"
  "/work/main/core/sign.c" "CMakeFiles/hg_core.dir/core/sign.c.o" "gcc" "CMakeFiles/hg_core.dir/core/sign.c.o.d"
  "/work/main/core/store.c" "CMakeFiles/hg_core.dir/core/store.c.o" "gcc" "CMakeFiles/hg_core.dir/core/store.c.o.d"
  "/work/main/core/webhooks.c" "CMakeFiles/hg_core.dir/core/webhooks.c.o" "gcc" "CMakeFiles/hg_core.dir/core/webhooks.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/main/build/CMakeFiles/llhttp.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
