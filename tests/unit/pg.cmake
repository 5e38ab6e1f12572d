# pg.cmake: the PostgreSQL store engine's build and its unit test, for the
# main CMakeLists.txt to include AFTER hg_core is defined and AFTER the
# tests/unit/test_*.c loop (which already makes the test_db target).
#
# libpq from Debian's libpq-dev (pkg-config module libpq).
hg_require_pkg(PQ libpq libpq-dev)
target_sources(hg_core PRIVATE ${CMAKE_SOURCE_DIR}/core/store/db_pg.c)
target_include_directories(hg_core PUBLIC ${PQ_INCLUDE_DIRS})
target_link_libraries(hg_core PUBLIC ${PQ_LINK_LIBRARIES})

# test_db talks to the PostgreSQL named by HG_TEST_PG_URI (scripts/pg-tmp
# start DIR prints one) and exits 77, reported as skipped, without it.
if(NOT TARGET test_db)
  add_executable(test_db ${CMAKE_SOURCE_DIR}/tests/unit/test_db.c)
  target_link_libraries(test_db PRIVATE hg_core)
  add_test(NAME unit/test_db COMMAND test_db WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
endif()
set_tests_properties(unit/test_db PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
