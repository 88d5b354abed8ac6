"""Log formatting: times in UTC with their zone, whatever TIME_ZONE the admin shows.

Every line is scrubbed of URL credentials (an app token in a query string, `user:pass@`):
libraries log the URLs they request (urllib3 at DEBUG), tracebacks quote them, and none of
that may carry a secret into a log.
"""

import logging
import time

from trees.socrata import redact_url_secrets


class UTCFormatter(logging.Formatter):
    converter = time.gmtime
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"

    def format(self, record: logging.LogRecord) -> str:
        return redact_url_secrets(super().format(record))
