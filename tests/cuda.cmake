# GPU suites: built with the CUDA backend; they skip where no GPU is present (CI).
# cpu_input.c is compiled in directly: the GPU kernel is checked against the CPU backend's
# twin without linking the whole CPU backend (oneDNN) into a GPU test.
if(STOKER_HAVE_CUDA)
  stoker_test(cuda_input SOURCES test_cuda_input.c ${PROJECT_SOURCE_DIR}/trainer/cpu_input.c
              LIBS stoker_cuda m)
  target_include_directories(test_cuda_input PRIVATE ${PROJECT_SOURCE_DIR}/trainer)
  # The CUDA backend against the CPU backend, layer by layer through whole models.
  stoker_test(cuda_net SOURCES test_cuda_net.c LIBS stoker_cuda_net m)
  # The trainer's double-buffered input on the GPU, fed through train_input.
  stoker_test(cuda_train SOURCES test_cuda_train.c test_nobn.c LIBS stoker_cuda_net m)
  # The batch-norm kernels against the CPU backend's batch norm and activations.
  stoker_test(cuda_bn SOURCES test_cuda_bn.c LIBS stoker_cuda_net m)
  # Squeeze-and-excitation's pool and scale kernels against host sums.
  stoker_test(cuda_se SOURCES test_cuda_se.c LIBS stoker_cuda_net m)
  # Our depthwise convolution kernels against the CPU backend's oneDNN convolution.
  stoker_test(cuda_dwconv SOURCES test_cuda_dwconv.c LIBS stoker_cuda_net m)
  # float32 convolutions in NCHW on copies (whole batch and in chunks) against NHWC.
  stoker_test(cuda_conv SOURCES test_cuda_conv.c LIBS stoker_cuda_net m)
  target_compile_options(test_cuda_conv PRIVATE -Wno-deprecated-declarations)
endif()
# The 16-bit types' host conversions (no GPU needed; header only).
stoker_test(cuda_dtype SOURCES test_cuda_dtype.c LIBS m)
target_include_directories(test_cuda_dtype PRIVATE ${PROJECT_SOURCE_DIR}/cuda)
# The memory plan's host rules against the CUDA kernels' (no GPU needed).
if(STOKER_HAVE_CUDA)
  stoker_test(cuda_plan SOURCES test_cuda_plan.c LIBS stoker_cuda_net m)
endif()
# NCCL data parallel: 2 GPUs at batch B against 1 GPU at 2B (skips below 2 GPUs).
if(STOKER_HAVE_CUDA AND STOKER_HAVE_NCCL)
  stoker_test(cuda_ddp SOURCES test_cuda_ddp.c test_loader_fixture.c test_nobn.c
              LIBS stoker_cuda_ddp stoker_loader PkgConfig::ZLIB m)
endif()
