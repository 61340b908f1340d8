"""The ``<hypernet:…>`` prompt tag: its grammar and parser (:mod:`.grammar`), the one tag writer (:mod:`.writer`),
editing the tags of a prompt (:mod:`.edit`, mirrored by ``javascript/hypernet.js``) and the ``Hypernet hashes``
infotext (:mod:`.infotext`)."""
