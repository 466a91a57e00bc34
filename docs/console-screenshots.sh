#!/bin/sh
# Refreshes the console screenshots in docs/images/ (docs/console.md shows them): runs
# the end-to-end browser test, which saves the main views when KEEL_CONSOLE_SCREENSHOTS
# names a directory. Needs chromium and chromedriver (Debian: chromium chromium-driver).
set -eu
cd "$(dirname "$0")/.."
KEEL_CONSOLE_SCREENSHOTS="$(pwd)/docs/images" \
    cargo test -p keel --test console_browser sign_in_see_the_alert_of_a_bad_apply_and_roll_back_in_a_browser
ls -l docs/images/console-*.png
