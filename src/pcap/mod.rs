//! Capture files: pcap and pcapng reading.
