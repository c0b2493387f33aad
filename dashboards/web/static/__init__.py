"""The page's HTML, JavaScript and CSS (a package only so that they ship with finsentry)."""
