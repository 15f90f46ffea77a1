# Supervisor suites: stoker-run end to end, faults and recovery.
stoker_test(run SOURCES test_run.c test_proc_fixture.c test_loader_fixture.c
            LIBS stoker_loader stoker_proto PkgConfig::ZLIB util)
add_dependencies(test_run stoker-run stoker-eval stoker-train stoker-loader stoker-data)
