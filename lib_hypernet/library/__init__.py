"""A folder of hypernetwork files: names and lookup (:mod:`.folder`), one description of a file
(:mod:`.description`, :mod:`.text`), the persisted caches (:mod:`.caches`), background reading (:mod:`.facts`),
every write to the folder (:mod:`.actions`), and what the hosts and panels use on top: tags to a stack and
messages (:mod:`.service`, :mod:`.report`), the panel's data source (:mod:`.source`), the examples (:mod:`.examples`)."""
