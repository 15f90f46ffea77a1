# Optimizers and learning-rate schedules against torch.optim.
stoker_test(optim SOURCES test_optim.c LIBS stoker_model m)
stoker_test(train_input SOURCES test_train_input.c LIBS stoker_trainer)
stoker_test(train_group SOURCES test_train_group.c LIBS stoker_trainer)
stoker_test(cpu_input SOURCES test_cpu_input.c LIBS stoker_trainer)
stoker_test(cpu_net SOURCES test_cpu_net.c LIBS stoker_trainer m)
stoker_test(train_resume SOURCES test_train_resume.c test_loader_fixture.c
            LIBS stoker_loader stoker_model PkgConfig::ZLIB)
add_dependencies(test_train_resume stoker-train stoker-loader) # it runs the built tools
stoker_test(cpu_models SOURCES test_cpu_models.c test_model_check.c LIBS stoker_trainer m)
stoker_test(cpu_graph SOURCES test_cpu_graph.c test_cpu_fixture.c LIBS stoker_trainer m)
stoker_test(train_supervised SOURCES test_train_supervised.c test_proc_fixture.c
            test_loader_fixture.c LIBS stoker_loader stoker_proto PkgConfig::ZLIB)
add_dependencies(test_train_supervised stoker-train stoker-loader stoker-data)
stoker_test(train_group_net SOURCES test_train_group_net.c test_loader_fixture.c test_nobn.c
            LIBS stoker_trainer stoker_loader PkgConfig::ZLIB m)
stoker_test(grad_buckets SOURCES test_grad_buckets.c LIBS stoker_trainer)
