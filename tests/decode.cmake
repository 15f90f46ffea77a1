# Loader process suites: JPEG decode, epoch order, batches, the process end to end.
stoker_test(loader_decode SOURCES test_loader_decode.c LIBS stoker_loader)
stoker_test(loader_window SOURCES test_loader_window.c LIBS stoker_loader)
stoker_test(loader_order SOURCES test_loader_order.c LIBS stoker_loader)
stoker_test(loader_batch SOURCES test_loader_batch.c test_loader_fixture.c LIBS stoker_loader PkgConfig::ZLIB)
stoker_test(loader_proc SOURCES test_loader_proc.c test_loader_fixture.c LIBS stoker_loader stoker_trainer PkgConfig::ZLIB)
add_dependencies(test_loader_proc stoker-loader) # it runs the built tool
