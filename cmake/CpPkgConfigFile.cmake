# Generates childproc.pc in the build directory from childproc.pc.in.
#
# prefix= is CMAKE_INSTALL_PREFIX at configure time: `cmake --install
# --prefix DIR` does not rewrite it, so configure with
# -DCMAKE_INSTALL_PREFIX=DIR (as `make install PREFIX=DIR` does) instead.
# libdir and includedir are written relative to ${prefix} when
# GNUInstallDirs gave relative paths.

foreach(kind LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${kind}}")
    set(cp_pc_${kind} "${CMAKE_INSTALL_${kind}}")
  else()
    set(cp_pc_${kind} "\${prefix}/${CMAKE_INSTALL_${kind}}")
  endif()
endforeach()

configure_file("${PROJECT_SOURCE_DIR}/childproc.pc.in"
  "${PROJECT_BINARY_DIR}/childproc.pc" @ONLY)
