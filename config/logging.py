"""Log formatting: times in UTC with their zone, whatever TIME_ZONE the admin shows."""

import logging
import time


class UTCFormatter(logging.Formatter):
    converter = time.gmtime
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"
