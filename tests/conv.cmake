# CPU backend convolution (oneDNN) against PyTorch fixtures and central differences.
stoker_test(cpu_conv SOURCES test_cpu_conv.c LIBS stoker_model m)
