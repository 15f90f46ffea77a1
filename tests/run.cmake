# Supervisor suites: stoker-run end to end, faults and recovery.
stoker_test(run SOURCES test_run.c test_proc_fixture.c test_loader_fixture.c
            LIBS stoker_loader stoker_proto PkgConfig::ZLIB util)
add_dependencies(test_run stoker-run stoker-eval stoker-train stoker-loader stoker-data)
# Its sockets beyond the private ipc directory: tcp, CURVE, binding rules.
stoker_test(run_net SOURCES test_run_net.c test_proc_fixture.c test_loader_fixture.c
            LIBS stoker_loader stoker_proto PkgConfig::ZLIB)
add_dependencies(test_run_net stoker-run stoker-eval stoker-train stoker-loader stoker-data)
# Data parallel (--gpus) on the CPU backend through stoker-run, and the rank layout.
stoker_test(run_ranks SOURCES test_run_ranks.c test_proc_fixture.c test_loader_fixture.c
            ${PROJECT_SOURCE_DIR}/supervisor/run_ranks.c
            LIBS stoker_loader stoker_proto PkgConfig::ZLIB)
target_include_directories(test_run_ranks PRIVATE ${PROJECT_SOURCE_DIR}/supervisor)
add_dependencies(test_run_ranks stoker-run stoker-eval stoker-train stoker-loader stoker-data)
