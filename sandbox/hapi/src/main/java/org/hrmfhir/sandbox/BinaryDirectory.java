package org.hrmfhir.sandbox;

import org.apache.commons.io.FileUtils;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A folder of this server's own for Binary content (bulk export files): made fresh under a parent
 * folder at start-up, deleted with everything in it when the server stops. The database is in
 * memory, so nothing in the folder outlives it; a fresh folder per process keeps two sandboxes
 * that share a parent apart.
 */
public final class BinaryDirectory implements AutoCloseable {

	private static final Logger ourLog = LoggerFactory.getLogger(BinaryDirectory.class);

	private final Path myPath;

	public BinaryDirectory(Path theParent) throws IOException {
		Files.createDirectories(theParent);
		myPath = Files.createTempDirectory(theParent, "binaries-");
		ourLog.info("Binary content over the threshold goes to {}", myPath);
	}

	public Path path() {
		return myPath;
	}

	@Override
	public void close() throws IOException {
		FileUtils.deleteDirectory(myPath.toFile());
	}
}
