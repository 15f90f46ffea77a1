# Until loader_decode.c joins stoker_loader, the suite compiles it directly.
stoker_test(loader_decode SOURCES test_loader_decode.c ${PROJECT_SOURCE_DIR}/loader/loader_decode.c
            LIBS stoker_augment PkgConfig::JPEG)
target_include_directories(test_loader_decode PRIVATE ${PROJECT_SOURCE_DIR}/loader)
stoker_test(loader_order SOURCES test_loader_order.c ${PROJECT_SOURCE_DIR}/loader/loader_order.c
            LIBS stoker_proto)
target_include_directories(test_loader_order PRIVATE ${PROJECT_SOURCE_DIR}/loader)
