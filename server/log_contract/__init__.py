"""The log's contract: its typed records (``records``) and the one mapper (``mapper``)."""
