"""Helpers shared by the test modules (test modules never import each other): results and
pytest-benchmark documents to build (:mod:`.results`), git projects and ``perfgate ab`` runs
(:mod:`.ab`), the example service and its processes for load tests (:mod:`.load`), inner
pytest sessions (:mod:`.sessions`), and a GitLab client on the loopback stub (:mod:`.gitlab`)."""
