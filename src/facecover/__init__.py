"""facecover: 3D-printable wound covers from face scans and photos.

All mesh coordinates are millimetres unless a name says otherwise.
"""

__version__ = "0.1.0"


class FacecoverError(Exception):
    """A user-facing error: bad input, bad config value or impossible request.

    The message names the file (or config key) and the problem; the CLI prints
    it without a traceback and exits with status 1.
    """
