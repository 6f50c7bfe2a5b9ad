# mproc_set_warnings(<target>): the warning set every mproc target builds with.
function(mproc_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion
                                           -Wno-sign-conversion -Wnon-virtual-dtor)
  if(MPROC_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
