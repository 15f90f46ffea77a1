# Loader and dataset suites: ImageFolder scanning, the index file, the IDX reader, the
# Fashion-MNIST and synthetic writers, and the stoker-data command line.
# test_loader_fixture.c holds the scratch-tree helpers they share.
set(LOADER_TEST_LIBS stoker_loader PkgConfig::ZLIB PkgConfig::TURBOJPEG)
stoker_test(loader_scan SOURCES test_loader_scan.c test_loader_fixture.c LIBS ${LOADER_TEST_LIBS})
stoker_test(loader_index SOURCES test_loader_index.c test_loader_fixture.c LIBS ${LOADER_TEST_LIBS})
stoker_test(data_idx SOURCES test_data_idx.c test_loader_fixture.c LIBS ${LOADER_TEST_LIBS})
stoker_test(data_fmnist SOURCES test_data_fmnist.c test_loader_fixture.c LIBS ${LOADER_TEST_LIBS})
stoker_test(data_synth SOURCES test_data_synth.c test_loader_fixture.c LIBS ${LOADER_TEST_LIBS})
stoker_test(data_cli SOURCES test_data_cli.c test_loader_fixture.c LIBS ${LOADER_TEST_LIBS})
add_dependencies(test_data_cli stoker-data) # it runs the built tool
stoker_test(data_verify SOURCES test_data_verify.c test_loader_fixture.c LIBS ${LOADER_TEST_LIBS})
add_dependencies(test_data_verify stoker-data) # its CLI tests run the built tool
stoker_test(data_shrink SOURCES test_data_shrink.c test_loader_fixture.c LIBS ${LOADER_TEST_LIBS})
add_dependencies(test_data_shrink stoker-data)
