stoker_test(augment SOURCES test_augment.c LIBS stoker_augment)
