# Finds the libraries childproc builds against, through pkg-config.
#
# A missing tool or module stops the configure step with the Debian package
# that provides it, because that is the one fix a user needs to know.

find_package(PkgConfig QUIET)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR
    "pkg-config not found. Install it with:\n"
    "  apt-get install pkg-config\n"
    "or run scripts/deps.sh, which installs every package the build needs.")
endif()

# Defines the imported target PkgConfig::<prefix> for pkg-config module
# <module>, or stops with the command that installs <debian_package>.
function(cp_require_pkg_module prefix module debian_package)
  pkg_check_modules(${prefix} QUIET IMPORTED_TARGET GLOBAL ${module})
  if(NOT ${prefix}_FOUND)
    message(FATAL_ERROR
      "pkg-config module '${module}' not found. Install it with:\n"
      "  apt-get install ${debian_package}\n"
      "or run scripts/deps.sh, which installs every package the build needs.")
  endif()
  message(STATUS "Found ${module} ${${prefix}_VERSION}")
endfunction()

# Both are used by the public header (childproc.h includes uv.h and
# cjson/cJSON.h), so programs that use childproc link them too.
cp_require_pkg_module(LIBUV libuv libuv1-dev)
cp_require_pkg_module(LIBCJSON libcjson libcjson-dev)
