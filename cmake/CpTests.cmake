# Test programs, the helper programs they start, and one ctest test per
# cmocka case.
#
#   tests/helpers/NAME.c  -> executable NAME in <build>/tests/helpers
#   tests/test_util.c     -> linked into every test program, if present
#   tests/test_AREA.c     -> executable test_AREA; each line
#                            `cmocka_unit_test(CASE),` in it (or another
#                            cmocka_unit_test_* macro with CASE first)
#                            becomes the ctest test AREA.CASE, which runs
#                            `test_AREA CASE`
#
# A test program's main() passes argv[1] to cmocka_set_test_filter(), so
# `test_AREA CASE` runs that one case.

cp_require_pkg_module(CMOCKA cmocka libcmocka-dev)

set(cp_tests_dir "${PROJECT_SOURCE_DIR}/tests")
set(cp_helper_dir "${PROJECT_BINARY_DIR}/tests/helpers")

# Seconds before ctest kills one case. Cases stop their own loops with a
# guard timer (cp_test_loop_run), so this limit catches a case that blocks
# outside the loop. It leaves room for valgrind, which runs cases many
# times slower.
set(CP_TEST_TIMEOUT 120 CACHE STRING "ctest timeout of one test case, in s")

# Settings shared by test programs, test_util.c and helper programs.
add_library(cp_test_settings INTERFACE)
# -iquote, not -I, so that src/spawn.h cannot shadow the system <spawn.h>.
target_compile_options(cp_test_settings INTERFACE
  "-iquote${PROJECT_SOURCE_DIR}/src"
  "-iquote${cp_tests_dir}")
target_compile_definitions(cp_test_settings INTERFACE
  "CP_TEST_HELPER_DIR=\"${cp_helper_dir}\""
  "CP_TEST_SOURCE_DIR=\"${cp_tests_dir}\""
  "CP_TEST_EXAMPLES_DIR=\"${CMAKE_BINARY_DIR}/examples\"")
target_link_libraries(cp_test_settings INTERFACE
  childproc_static
  cp_compile_settings)

# ---------------------------------------------------------------------------
# Helper programs. Targets are named helper_NAME so that a helper cannot
# clash with another target; the file on disk is NAME.

set(cp_helper_extra_sources "")
if(CP_SANITIZE)
  # Keeps ASan from turning a helper's death by SIGSEGV into SIGABRT.
  set(cp_helper_extra_sources
    "${PROJECT_SOURCE_DIR}/cmake/helper-sanitizer-options.c")
endif()

add_custom_target(cp_test_helpers)
file(GLOB cp_helper_sources CONFIGURE_DEPENDS "${cp_tests_dir}/helpers/*.c")
foreach(source IN LISTS cp_helper_sources)
  get_filename_component(name "${source}" NAME_WLE)
  add_executable(helper_${name} "${source}" ${cp_helper_extra_sources})
  target_link_libraries(helper_${name} PRIVATE cp_test_settings)
  set_target_properties(helper_${name} PROPERTIES
    OUTPUT_NAME "${name}"
    RUNTIME_OUTPUT_DIRECTORY "${cp_helper_dir}")
  add_dependencies(cp_test_helpers helper_${name})
endforeach()

# ---------------------------------------------------------------------------
# Shared test support.

# A glob rather than if(EXISTS), so that the build notices when
# test_util.c appears or goes away and relinks every test.
set(cp_test_util_source "${cp_tests_dir}/test_util.c")
file(GLOB cp_test_util_found CONFIGURE_DEPENDS "${cp_test_util_source}")
set(cp_test_util_target "")
if(cp_test_util_found)
  add_library(cp_test_util STATIC "${cp_test_util_source}")
  target_link_libraries(cp_test_util PUBLIC cp_test_settings PkgConfig::CMOCKA)
  set(cp_test_util_target cp_test_util)
endif()

# ---------------------------------------------------------------------------
# Test programs and their cases.

# Matches `cmocka_unit_test(CASE),`, `cmocka_unit_test_setup_teardown(CASE,
# setup, teardown),` and the other cmocka_unit_test_* forms; group 1 is CASE.
set(cp_case_regex
  "^[ \t]*cmocka_unit_test[a-z_]*\\([ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*[,)]")

# A filter that matches no case makes cmocka print this line and exit 0.
set(cp_no_case_run_regex "\\[==========\\] 0 test\\(s\\) run")

file(GLOB cp_test_sources CONFIGURE_DEPENDS "${cp_tests_dir}/test_*.c")
list(REMOVE_ITEM cp_test_sources "${cp_test_util_source}")

foreach(source IN LISTS cp_test_sources)
  get_filename_component(program "${source}" NAME_WLE)
  string(REGEX REPLACE "^test_" "" area "${program}")

  add_executable(${program} "${source}")
  target_link_libraries(${program} PRIVATE
    ${cp_test_util_target} cp_test_settings PkgConfig::CMOCKA)
  set_target_properties(${program} PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY "${PROJECT_BINARY_DIR}/tests")
  add_dependencies(${program} cp_test_helpers)

  # Reconfigure when the file changes, so added cases get registered.
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${source}")

  file(STRINGS "${source}" case_lines REGEX "${cp_case_regex}")
  # With one group, a case that runs nothing means the registration line
  # and the group disagree; with several groups, every other group runs
  # nothing, so the check is skipped.
  file(STRINGS "${source}" group_lines REGEX "cmocka_run_group_tests")
  list(LENGTH group_lines group_count)

  set(registered "")
  foreach(line IN LISTS case_lines)
    string(REGEX MATCH "${cp_case_regex}" _ "${line}")
    set(case "${CMAKE_MATCH_1}")
    # A case listed in two groups is still one ctest test: the filter
    # runs it in both.
    if(case IN_LIST registered)
      continue()
    endif()
    list(APPEND registered "${case}")

    add_test(NAME "${area}.${case}" COMMAND ${program} "${case}")
    set_tests_properties("${area}.${case}" PROPERTIES
      TIMEOUT "${CP_TEST_TIMEOUT}"
      LABELS "${area}")
    if(group_count EQUAL 1)
      set_tests_properties("${area}.${case}" PROPERTIES
        FAIL_REGULAR_EXPRESSION "${cp_no_case_run_regex}")
    endif()
  endforeach()

  if(NOT registered)
    message(WARNING "tests/${program}.c has no line of the form "
      "`cmocka_unit_test(NAME),`, so ctest runs none of its cases")
  endif()
endforeach()
