# CPU backend layers (batch norm, activations, pooling, linear, loss, dropout): against
# PyTorch fixtures, finite differences, shape errors and behaviour.
stoker_test(cpu_layers
  SOURCES test_cpu_layers.c test_cpu_gradcheck.c test_cpu_shapes.c test_cpu_behaviour.c
          test_cpu_fixture.c
  LIBS stoker_model m)
stoker_test(transfer SOURCES test_transfer.c LIBS stoker_trainer m)
# Checkpoints written by a thread (ckpt_writer.h).
stoker_test(ckpt_writer SOURCES test_ckpt_writer.c test_loader_fixture.c LIBS stoker_trainer m PkgConfig::ZLIB)
