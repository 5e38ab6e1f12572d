# CMake generated Testfile for 
# Source directory: /work/main
# Build directory: /work/main/build
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
add_test(unit/test_common "/work/main/build/test_common")
set_tests_properties(unit/test_common PROPERTIES  TIMEOUT "120" WORKING_DIRECTORY "/work/main" _BACKTRACE_TRIPLES "/work/main/CMakeLists.txt;78;add_test;/work/main/CMakeLists.txt;0;")
add_test(unit/test_config "/work/main/build/test_config")
set_tests_properties(unit/test_config PROPERTIES  TIMEOUT "120" WORKING_DIRECTORY "/work/main" _BACKTRACE_TRIPLES "/work/main/CMakeLists.txt;78;add_test;/work/main/CMakeLists.txt;0;")
add_test(unit/test_event_types "/work/main/build/test_event_types")
set_tests_properties(unit/test_event_types PROPERTIES  TIMEOUT "120" WORKING_DIRECTORY "/work/main" _BACKTRACE_TRIPLES "/work/main/CMakeLists.txt;78;add_test;/work/main/CMakeLists.txt;0;")
