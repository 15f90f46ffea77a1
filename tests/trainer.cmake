# Trainer suites: checkpoints (safetensors).
stoker_test(st_file SOURCES test_st_file.c LIBS stoker_model)
include(optim.cmake)
