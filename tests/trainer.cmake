# Trainer suites: checkpoints (safetensors).
stoker_test(st_file SOURCES test_st_file.c LIBS stoker_model)
include(optim.cmake)
# stoker-predict and fine-tuning as users run them.
stoker_test(predict SOURCES test_predict.c test_loader_fixture.c
            LIBS stoker_trainer stoker_loader PkgConfig::ZLIB)
add_dependencies(test_predict stoker-predict)
stoker_test(finetune SOURCES test_finetune.c test_loader_fixture.c LIBS stoker_loader PkgConfig::ZLIB)
add_dependencies(test_finetune stoker-train stoker-loader stoker-data)
# The memory planner, stoker-train --plan, gradient accumulation (issue 8).
stoker_test(vram_plan SOURCES test_vram_plan.c ../trainer/train_plan.c LIBS stoker_trainer)
stoker_test(vram_nodes SOURCES test_vram_nodes.c LIBS stoker_trainer)
add_dependencies(test_vram_plan stoker-train)
stoker_test(train_accum SOURCES test_train_accum.c test_nobn.c LIBS stoker_trainer m)
