# Benchmark programs in bench/, run by `make bench` through bench/run.py,
# and one ctest smoke case per benchmark, which runs it with tiny counts so
# that the programs and scripts keep working. The smoke cases check that
# each benchmark runs and prints its result, never how fast it was.
#
#   bench/NAME.c -> executable NAME in <build>/bench, linked with
#                   bench/bench-util.c, the shared library and libuv
#
# bench/json-parse.c needs jansson and json-c and is built by hand (see its
# header).

set(cp_bench_programs
  spawn-rate
  ipc-parent
  ipc-child
  ipc-floor
  capture
  idle-memory
  handle-rate)

set(cp_bench_dir "${PROJECT_BINARY_DIR}/bench")

add_library(cp_bench_util STATIC "${PROJECT_SOURCE_DIR}/bench/bench-util.c")
target_link_libraries(cp_bench_util PUBLIC cp_compile_settings)
target_link_libraries(cp_bench_util PRIVATE m)

add_custom_target(cp_bench_programs)
foreach(name IN LISTS cp_bench_programs)
  add_executable(bench_${name} "${PROJECT_SOURCE_DIR}/bench/${name}.c")
  target_link_libraries(bench_${name} PRIVATE
    cp_bench_util childproc cp_compile_settings)
  set_target_properties(bench_${name} PROPERTIES
    OUTPUT_NAME "${name}"
    RUNTIME_OUTPUT_DIRECTORY "${cp_bench_dir}")
  add_dependencies(cp_bench_programs bench_${name})
endforeach()

# The smoke cases run the same runner as `make bench`, so they cover the
# Node.js scripts too when `node` is on PATH. Bun is left out: it would
# have to be downloaded.
if(CP_BUILD_TESTS)
  find_program(CP_PYTHON3 python3)
  if(NOT CP_PYTHON3)
    message(WARNING "python3 not found: the bench.*_smoke tests are skipped")
  else()
    foreach(group spawn_rate ipc capture idle_memory handles)
      add_test(NAME "bench.${group}_smoke"
        COMMAND "${CP_PYTHON3}" "${PROJECT_SOURCE_DIR}/bench/run.py"
          --smoke --only "${group}" --build-dir "${PROJECT_BINARY_DIR}"
          --no-bun)
      set_tests_properties("bench.${group}_smoke" PROPERTIES
        TIMEOUT 120
        LABELS bench)
    endforeach()
  endif()
endif()
