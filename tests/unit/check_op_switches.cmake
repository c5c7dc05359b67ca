# A new op that a layer does not handle must not compile.
#
# Copies the sources to WORK, appends a unary elementwise row to the copy of
# ir/ops.def (the case that once fell into shape.c's binary branch and the
# interpreter's copying default), and compiles, syntax only, every file that
# switches over ops (the files that include ir/op_cases.h, and ir/shape.c and
# ir/interp_ew.c by name): each must fail with a -Wswitch error naming the new
# op. Run by ctest as op_switches:
#   cmake -DSRC=<repo> -DWORK=<scratch dir> -DCC=<compiler> -DINCLUDES=<dirs;...> -P this file
foreach(v SRC WORK CC)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "check_op_switches: -D${v}= is required")
  endif()
endforeach()

file(REMOVE_RECURSE ${WORK})
foreach(dir frontend ir passes codegen runtime cli)
  file(COPY ${SRC}/${dir} DESTINATION ${WORK})
endforeach()
file(APPEND ${WORK}/ir/ops.def
     "X(TEST_EXTRA, \"test_extra\", 1, SR_SAME, OPF_EW, \"a row no layer names (check_op_switches.cmake)\")\n")

file(GLOB_RECURSE sources RELATIVE ${WORK} ${WORK}/*.c)
set(checked "")
foreach(rel ${sources})
  file(STRINGS ${WORK}/${rel} uses REGEX "#include \"[./]*(ir/)?op_cases.h\"")
  if(uses OR rel STREQUAL "ir/shape.c" OR rel STREQUAL "ir/interp_ew.c")
    list(APPEND checked ${rel})
  endif()
endforeach()
if(NOT EXISTS ${WORK}/ir/shape.c)
  message(FATAL_ERROR "check_op_switches: the layer files were not found under ${SRC}")
endif()

set(incs -I${WORK})
foreach(d ${INCLUDES})
  list(APPEND incs -I${d})
endforeach()
set(bad "")
foreach(rel ${checked})
  execute_process(COMMAND ${CC} -std=c11 -D_POSIX_C_SOURCE=200809L -fsyntax-only -Wswitch ${incs}
                          ${WORK}/${rel}
                  RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
  if(err MATCHES "OP_TEST_EXTRA[^ ]* not handled in switch")
    message(STATUS "refused as it should be: ${rel}")
  else()
    list(APPEND bad ${rel})
    message(STATUS "${rel}: compiles with an op it does not name (rc ${rc})\n${err}")
  endif()
endforeach()
list(LENGTH checked n)
if(bad)
  message(FATAL_ERROR "check_op_switches: these files accept an op their switches do not name: ${bad}")
endif()
message(STATUS "check_op_switches: all ${n} files that switch over ops refuse an unnamed op")
