# cp_compile_settings: warnings and sanitizer flags for every target of the
# project (library, tests, helper programs, examples). Targets link it
# PRIVATE, so nothing here reaches users of the installed library.

add_library(cp_compile_settings INTERFACE)

target_compile_options(cp_compile_settings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow)

# uv.h needs POSIX types that -std=c17 hides, and the library calls GNU
# functions such as sigabbrev_np and pipe2. The value is empty, as in a plain
# `#define _GNU_SOURCE`, so a source file that also defines it that way
# repeats an identical definition instead of triggering a redefinition
# warning. A file that writes `#define _GNU_SOURCE 1` still gets one.
target_compile_definitions(cp_compile_settings INTERFACE _GNU_SOURCE=)
if(CP_WERROR)
  target_compile_options(cp_compile_settings INTERFACE -Werror)
endif()

if(CP_SANITIZE)
  # -fno-sanitize-recover=all turns every UBSan report into a failing exit,
  # so a test cannot pass while printing one.
  set(cp_sanitize_flags
    -fsanitize=address,undefined
    -fno-omit-frame-pointer
    -fno-sanitize-recover=all)
  target_compile_options(cp_compile_settings INTERFACE ${cp_sanitize_flags})
  target_link_options(cp_compile_settings INTERFACE ${cp_sanitize_flags})
endif()
