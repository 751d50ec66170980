# bpf_object(NAME SOURCE [HEADERS h...])
# Compiles bpf/SOURCE with clang for the BPF target (CO-RE against vmlinux.h), generates a
# libbpf skeleton header <NAME>.skel.h and yields an INTERFACE target NAME_skel that carries the
# include directory. The headers listed (shared ABI headers) are dependencies, so editing one
# rebuilds both the BPF object and the C++ that includes the skeleton.

find_program(BPF_CLANG NAMES clang clang-19 clang-16 clang-14 REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)

set(KSCOPE_VMLINUX_H "" CACHE FILEPATH "vmlinux.h to use instead of generating one from /sys/kernel/btf/vmlinux")
set(BPF_GEN_DIR ${CMAKE_BINARY_DIR}/bpf)
file(MAKE_DIRECTORY ${BPF_GEN_DIR})

if(KSCOPE_VMLINUX_H)
  set(VMLINUX_H ${KSCOPE_VMLINUX_H})
else()
  set(VMLINUX_H ${BPF_GEN_DIR}/vmlinux.h)
  add_custom_command(OUTPUT ${VMLINUX_H}
    COMMAND ${BPFTOOL} btf dump file /sys/kernel/btf/vmlinux format c > ${VMLINUX_H}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${VMLINUX_H}.tmp ${VMLINUX_H}
    COMMENT "Generating vmlinux.h from the running kernel's BTF"
    VERBATIM)
endif()
add_custom_target(vmlinux_h DEPENDS ${VMLINUX_H})

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(BPF_TARGET_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(BPF_TARGET_ARCH arm64)
else()
  set(BPF_TARGET_ARCH ${CMAKE_SYSTEM_PROCESSOR})
endif()

function(bpf_object NAME SOURCE)
  cmake_parse_arguments(BPF "" "" "HEADERS" ${ARGN})
  set(src ${CMAKE_SOURCE_DIR}/bpf/${SOURCE})
  set(obj ${BPF_GEN_DIR}/${NAME}.bpf.o)
  set(skel ${BPF_GEN_DIR}/${NAME}.skel.h)
  # vmlinux.h is reached through the vmlinux_h target, not as a file dependency: with the
  # Makefile generator every target listing a generated file runs its rule, and two BPF objects
  # built in parallel would race writing it.
  set(deps "")
  foreach(h ${BPF_HEADERS})
    list(APPEND deps ${CMAKE_SOURCE_DIR}/${h})
  endforeach()
  add_custom_command(OUTPUT ${obj}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_${BPF_TARGET_ARCH}
            -Wall -Werror -Wno-unused-function
            -I${BPF_GEN_DIR} -I${CMAKE_SOURCE_DIR}/include -I${CMAKE_SOURCE_DIR}/bpf
            -c ${src} -o ${obj}
    DEPENDS ${src} ${deps}
    COMMENT "Compiling BPF object ${NAME}"
    VERBATIM)
  add_custom_command(OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${NAME}_bpf > ${skel}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${obj}
    COMMENT "Generating BPF skeleton ${NAME}.skel.h"
    VERBATIM)
  add_custom_target(${NAME}_skel_gen DEPENDS ${skel})
  add_dependencies(${NAME}_skel_gen vmlinux_h)
  add_library(${NAME}_skel INTERFACE)
  add_dependencies(${NAME}_skel ${NAME}_skel_gen)
  target_include_directories(${NAME}_skel INTERFACE ${BPF_GEN_DIR})
endfunction()
