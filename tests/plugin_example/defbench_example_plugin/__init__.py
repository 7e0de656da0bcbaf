"""defbench plugins living in their own package, one of each kind: an attack (attacks.py), a defense
(defenses.py) and a classifier (classifiers.py). docs/PLUGINS.md walks through them."""
