# Evaluator suites: stoker-eval once and following notices.
stoker_test(eval SOURCES test_eval.c test_proc_fixture.c test_loader_fixture.c
            LIBS stoker_loader stoker_proto PkgConfig::ZLIB)
add_dependencies(test_eval stoker-eval stoker-train stoker-loader stoker-data)
# The val cache (eval_cache.h) on its own.
stoker_test(eval_cache SOURCES test_eval_cache.c LIBS stoker_eval)
# The evaluator's duty cycle beside a GPU trainer (eval_pace.h).
stoker_test(eval_pace SOURCES test_eval_pace.c LIBS stoker_eval)
