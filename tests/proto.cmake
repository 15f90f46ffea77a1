stoker_test(proto SOURCES test_proto.c LIBS stoker_proto)
stoker_test(proto_zmq SOURCES test_proto_zmq.c LIBS stoker_proto)
stoker_test(curve SOURCES test_curve.c test_loader_fixture.c LIBS stoker_loader stoker_proto PkgConfig::ZLIB)
