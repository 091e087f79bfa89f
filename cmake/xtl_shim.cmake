# Debian's xsimd 8.1 CMake config makes its target link "xtl" without finding
# it (xtl is header-only and xsimd uses it only for optional xtl::xcomplex
# support), so a program linking xsimd fails with "cannot find -lxtl" unless
# libxtl-dev is installed and found first. Use xtl's own config if there is
# one, else an empty stand-in target.
if(TARGET xsimd AND NOT TARGET xtl)
  find_package(xtl QUIET)
  if(NOT TARGET xtl)
    add_library(xtl INTERFACE IMPORTED GLOBAL)
  endif()
endif()
