# GPU suites: built with the CUDA backend; they skip where no GPU is present (CI).
if(STOKER_HAVE_CUDA)
  stoker_test(cuda_input SOURCES test_cuda_input.c LIBS stoker_cuda stoker_trainer m)
endif()
