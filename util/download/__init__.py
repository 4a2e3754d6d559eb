"""Safe, resumable downloads shared by ``download_datasets.py``, ``download_bl30k.py``
and ``download_model.py``; import from the module that does the job:

- :mod:`~util.download.install`: :class:`Archive`/:class:`Dataset` and
  ``install_archive`` (download, verify, extract, move into place, mark complete),
  plus the ``--list`` status and completion checks.
- :mod:`~util.download.transfer`: HTTP with resume (``.part`` files, Range
  requests), Google Drive through gdown, and the ``IMSFR_DOWNLOAD_BASE_URL`` mirror.
- :mod:`~util.download.verify`: web page, size and sha256 checks, and an archive's
  own structure (a zip's central directory, a tar's end-of-archive marker).
- :mod:`~util.download.archives`: safe zip/tar extraction (no absolute paths, ``..``,
  links or special files) and moving the result into place without following links.
- :mod:`~util.download.command_line`: the scripts' common options, confirmation,
  the free-space check and the one-line error report.
- :mod:`~util.download.errors`: the error types.
"""
