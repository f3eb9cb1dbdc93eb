# libFuzzer targets and a short run of each as a ctest test.
#
#   fuzz/fuzz_NAME.c      -> executable fuzz_NAME in <build>/fuzz, built
#                            with clang's -fsanitize=fuzzer,address together
#                            with the library sources, so that the library
#                            is instrumented for coverage too
#   fuzz/corpus/CORPUS/   -> its seed inputs, only read: the inputs a run
#                            finds go to <build>/fuzz/corpus/CORPUS
#   ctest fuzz.NAME_short_run (label fuzz): a fixed number of inputs, as a
#                            regression check; longer runs are started by
#                            hand, e.g. `<build>/fuzz/fuzz_NAME -max_len=4096
#                            <build>/fuzz/corpus/CORPUS fuzz/corpus/CORPUS`
#
# libFuzzer ships with clang only, so the option is on by default with clang
# and an error with any other compiler.

if(CMAKE_C_COMPILER_ID MATCHES "Clang")
  set(cp_fuzz_default ON)
else()
  set(cp_fuzz_default OFF)
endif()
option(CP_BUILD_FUZZ "Build the libFuzzer targets in fuzz/ (needs clang)"
  ${cp_fuzz_default})

if(NOT CP_BUILD_FUZZ)
  return()
endif()
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR
    "CP_BUILD_FUZZ needs clang, whose libFuzzer the fuzz targets link; "
    "this build uses ${CMAKE_C_COMPILER_ID}. Configure with "
    "-DCMAKE_C_COMPILER=clang or -DCP_BUILD_FUZZ=OFF.")
endif()

# Inputs per ctest run and the largest input, in bytes.
set(CP_FUZZ_RUNS 200000 CACHE STRING "inputs per fuzz.*_short_run test")
set(CP_FUZZ_MAX_LEN 4096 CACHE STRING "largest fuzz input, in bytes")

set(cp_fuzz_flags -fsanitize=fuzzer,address -fno-omit-frame-pointer)

# cp_add_fuzzer(NAME CORPUS): fuzz/fuzz_NAME.c, seeds in fuzz/corpus/CORPUS.
function(cp_add_fuzzer name corpus)
  set(target "fuzz_${name}")
  set(found_corpus "${PROJECT_BINARY_DIR}/fuzz/corpus/${corpus}")
  set(seed_corpus "${PROJECT_SOURCE_DIR}/fuzz/corpus/${corpus}")

  add_executable(${target}
    "${PROJECT_SOURCE_DIR}/fuzz/${target}.c" ${cp_library_sources})
  target_compile_options(${target} PRIVATE
    ${cp_fuzz_flags} "-iquote${PROJECT_SOURCE_DIR}/src")
  target_link_options(${target} PRIVATE ${cp_fuzz_flags})
  target_link_libraries(${target} PRIVATE
    childproc_usage cp_compile_settings)
  set_target_properties(${target} PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY "${PROJECT_BINARY_DIR}/fuzz")

  if(CP_BUILD_TESTS)
    file(MAKE_DIRECTORY "${found_corpus}")
    add_test(NAME "fuzz.${name}_short_run"
      COMMAND ${target} -runs=${CP_FUZZ_RUNS} -max_len=${CP_FUZZ_MAX_LEN}
        "${found_corpus}" "${seed_corpus}")
    set_tests_properties("fuzz.${name}_short_run" PROPERTIES
      TIMEOUT 600
      LABELS fuzz)
  endif()
endfunction()

cp_add_fuzzer(channel_reader channel)
