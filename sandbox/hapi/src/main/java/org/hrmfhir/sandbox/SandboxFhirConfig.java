package org.hrmfhir.sandbox;

import ca.uhn.fhir.batch2.api.IJobMaintenanceService;
import ca.uhn.fhir.batch2.jobs.config.Batch2JobsConfig;
import ca.uhn.fhir.batch2.jobs.export.BulkDataExportProvider;
import ca.uhn.fhir.batch2.maintenance.JobMaintenanceServiceImpl;
import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.api.config.ThreadPoolFactoryConfig;
import ca.uhn.fhir.jpa.api.dao.IFhirSystemDao;
import ca.uhn.fhir.jpa.batch2.JpaBatch2Config;
import ca.uhn.fhir.interceptor.api.IInterceptorService;
import ca.uhn.fhir.jpa.binary.api.IBinaryStorageSvc;
import ca.uhn.fhir.jpa.binary.interceptor.BinaryStorageInterceptor;
import ca.uhn.fhir.jpa.binstore.FilesystemBinaryStorageSvcImpl;
import ca.uhn.fhir.jpa.config.HapiJpaConfig;
import ca.uhn.fhir.jpa.config.r4.JpaR4Config;
import ca.uhn.fhir.jpa.config.util.HapiEntityManagerFactoryUtil;
import ca.uhn.fhir.jpa.model.config.PartitionSettings;
import ca.uhn.fhir.jpa.model.config.SubscriptionSettings;
import ca.uhn.fhir.jpa.model.dialect.HapiFhirH2Dialect;
import ca.uhn.fhir.jpa.provider.JpaCapabilityStatementProvider;
import ca.uhn.fhir.jpa.provider.JpaSystemProvider;
import ca.uhn.fhir.jpa.search.DatabaseBackedPagingProvider;
import ca.uhn.fhir.jpa.subscription.channel.config.SubscriptionChannelConfig;
import ca.uhn.fhir.narrative2.NullNarrativeGenerator;
import ca.uhn.fhir.rest.api.EncodingEnum;
import ca.uhn.fhir.rest.server.ETagSupportEnum;
import ca.uhn.fhir.rest.server.IncomingRequestAddressStrategy;
import ca.uhn.fhir.rest.server.RestfulServer;
import ca.uhn.fhir.rest.server.provider.ResourceProviderFactory;
import ca.uhn.fhir.rest.server.util.ISearchParamRegistry;
import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import jakarta.persistence.EntityManagerFactory;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.SmartInitializingSingleton;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.beans.factory.config.ConfigurableListableBeanFactory;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Import;
import org.springframework.context.annotation.Lazy;
import org.springframework.context.annotation.Primary;
import org.springframework.orm.jpa.JpaTransactionManager;
import org.springframework.orm.jpa.LocalContainerEntityManagerFactoryBean;
import org.springframework.transaction.annotation.EnableTransactionManagement;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Properties;
import javax.sql.DataSource;

/**
 * Minimal HAPI FHIR R4 JPA wiring for the sandbox.
 *
 * <p>Imports the HAPI JPA core (R4 DAOs and resource providers, search, paging, validation
 * support), the Batch2 job framework and its job definitions (needed for bulk $export), the
 * in-memory message channel Batch2 runs on, and the thread-pool factory. It deliberately leaves
 * out FHIR Subscriptions, clinical reasoning, CDS Hooks, MDM, IPS, OpenAPI and the test page.
 */
@Configuration
@EnableTransactionManagement
@Import({
	JpaR4Config.class,
	HapiJpaConfig.class,
	JpaBatch2Config.class,
	Batch2JobsConfig.class,
	// In-memory (LinkedBlockingQueue) message broker; Batch2 uses it to hand out work chunks.
	// It does not enable FHIR Subscriptions.
	SubscriptionChannelConfig.class,
	ThreadPoolFactoryConfig.class
})
public class SandboxFhirConfig {

	private static final Logger ourLog = LoggerFactory.getLogger(SandboxFhirConfig.class);

	@Value("${hrm.sandbox.datasource.url:jdbc:h2:mem:hrm_sandbox;DB_CLOSE_DELAY=-1}")
	private String myJdbcUrl;

	@Value("${hrm.sandbox.datasource.max-pool-size:20}")
	private int myMaxPoolSize;

	@Value("${hrm.sandbox.default-page-size:100}")
	private int myDefaultPageSize;

	@Value("${hrm.sandbox.max-page-size:500}")
	private int myMaxPageSize;

	@Value("${hrm.sandbox.if-match-412:true}")
	private boolean myIfMatch412;

	@Value("${hrm.sandbox.batch2-maintenance-interval-ms:5000}")
	private long myBatch2MaintenanceIntervalMs;

	@Value("${hrm.sandbox.binary-storage.parent:${java.io.tmpdir}/hrm-sandbox}")
	private String myBinaryParent;

	@Value("${hrm.sandbox.binary-storage.min-bytes:1024}")
	private int myBinaryMinBytes;

	@Value("${hrm.sandbox.bulk-export.retention-hours:1}")
	private int myBulkExportRetentionHours;

	@Bean(destroyMethod = "close")
	public DataSource dataSource() {
		HikariConfig config = new HikariConfig();
		config.setPoolName("hrm-sandbox-h2");
		config.setJdbcUrl(myJdbcUrl);
		config.setUsername("sa");
		config.setPassword("");
		config.setMaximumPoolSize(myMaxPoolSize);
		config.setMinimumIdle(2);
		return new HikariDataSource(config);
	}

	/**
	 * Storage settings, chosen so that the sandbox behaves predictably for an integration client.
	 */
	@Bean
	public JpaStorageSettings jpaStorageSettings() {
		JpaStorageSettings s = new JpaStorageSettings();
		// No search-result cache: a search right after a write must see the write.
		s.setReuseCachedSearchResultsForMillis(null);
		// The 500-per-page cap is the paging provider's maximum (see restfulServer below).
		// FetchSizeDefaultMaximum is deliberately left at HAPI's default (no limit): it caps
		// *synchronous* searches, and bulk export loads resources synchronously in id batches of
		// up to 800, so a cap of 500 makes $export fail for any type with more than 500 resources.
		// Client-assigned ids: PUT Task/hrm-abc creates. Purely numeric client ids stay refused.
		s.setResourceClientIdStrategy(JpaStorageSettings.ClientIdStrategyEnum.ALPHANUMERIC);
		// Bulk export ($export) runs as a Batch2 job.
		s.setEnableTaskBulkExportJobExecution(true);
		s.setEnableTaskBulkImportJobExecution(false);
		s.setEnableTaskPreExpandValueSets(false);
		// Export files are kept this long after their job ends (HAPI: 2 h; its purge runs hourly,
		// so a file lives 1-2 h). Not 0: the purge would then take files a client is still
		// downloading.
		s.setBulkExportFileRetentionPeriodHours(myBulkExportRetentionHours);
		// A stored Binary is read back into the resource when served; let that hold a whole export
		// file (HAPI's file cap, 100 MiB), not only HAPI's default 10 MiB.
		s.setAutoInflateBinariesMaximumBytes(s.getBulkExportFileMaximumSize());
		// As on a real server (and HAPI's default): a reference to a missing resource is refused.
		s.setEnforceReferentialIntegrityOnWrite(true);
		// Test clean-up: conditional DELETE matching several resources, and $expunge.
		s.setAllowMultipleDelete(true);
		s.setExpungeEnabled(true);
		return s;
	}

	@Bean
	public PartitionSettings partitionSettings() {
		return new PartitionSettings();
	}

	/** No subscription channel types are enabled. */
	@Bean
	public SubscriptionSettings subscriptionSettings() {
		return new SubscriptionSettings();
	}

	@Primary
	@Bean
	public LocalContainerEntityManagerFactoryBean entityManagerFactory(
			DataSource dataSource,
			ConfigurableListableBeanFactory beanFactory,
			FhirContext fhirContext,
			JpaStorageSettings storageSettings) {
		LocalContainerEntityManagerFactoryBean emf =
				HapiEntityManagerFactoryUtil.newEntityManagerFactory(beanFactory, fhirContext, storageSettings);
		emf.setPersistenceUnitName("HAPI_PU");
		emf.setDataSource(dataSource);
		Properties p = new Properties();
		p.put("hibernate.dialect", HapiFhirH2Dialect.class.getName());
		p.put("hibernate.hbm2ddl.auto", "update");
		p.put("hibernate.format_sql", "false");
		p.put("hibernate.show_sql", "false");
		p.put("hibernate.jdbc.batch_size", "20");
		p.put("hibernate.cache.use_query_cache", "false");
		p.put("hibernate.cache.use_second_level_cache", "false");
		p.put("hibernate.cache.use_structured_entries", "false");
		p.put("hibernate.cache.use_minimal_puts", "false");
		p.put("hibernate.search.enabled", "false");
		emf.setJpaProperties(p);
		return emf;
	}

	@Primary
	@Bean
	public JpaTransactionManager transactionManager(EntityManagerFactory entityManagerFactory) {
		JpaTransactionManager tm = new JpaTransactionManager();
		tm.setEntityManagerFactory(entityManagerFactory);
		return tm;
	}

	/** Where Binary content goes: a folder of this process's own, deleted when it stops. */
	@Bean
	public BinaryDirectory binaryDirectory() throws IOException {
		return new BinaryDirectory(Path.of(myBinaryParent));
	}

	/**
	 * Bulk export writes its NDJSON output as Binary resources. Their content goes to files, not
	 * into the in-memory database (the heap): the {@link BinaryStorageInterceptor} takes the content
	 * of any Binary over the threshold out of the resource before it is stored and puts it back
	 * when the Binary is served.
	 */
	@Lazy
	@Bean
	public IBinaryStorageSvc binaryStorageSvc(BinaryDirectory theDirectory) {
		FilesystemBinaryStorageSvcImpl svc =
				new FilesystemBinaryStorageSvcImpl(theDirectory.path().toString());
		svc.setMinimumBinarySize(myBinaryMinBytes);
		return svc;
	}

	/** Registered with the JPA interceptor service: Batch2 writes Binaries without a REST request. */
	@Bean
	public SmartInitializingSingleton binaryStorageRegistration(
			IInterceptorService interceptorService, BinaryStorageInterceptor<?> binaryStorageInterceptor) {
		return () -> interceptorService.registerInterceptor(binaryStorageInterceptor);
	}

	/**
	 * Batch2 advances a job from one step to the next in its maintenance pass, which HAPI runs once
	 * a minute; a small bulk export then takes about three minutes. The sandbox runs it more often
	 * so that a $export of a few hundred resources finishes in seconds. Must be set before the
	 * scheduler registers its jobs (on context refresh), hence SmartInitializingSingleton.
	 */
	@Bean
	public SmartInitializingSingleton batch2MaintenanceInterval(IJobMaintenanceService maintenanceService) {
		return () -> {
			if (maintenanceService instanceof JobMaintenanceServiceImpl impl && myBatch2MaintenanceIntervalMs > 0) {
				impl.setScheduledJobFrequencyMillis(myBatch2MaintenanceIntervalMs);
				ourLog.info("Batch2 maintenance pass every {} ms", myBatch2MaintenanceIntervalMs);
			}
		};
	}

	@Bean
	public RestfulServer restfulServer(
			IFhirSystemDao<?, ?> systemDao,
			ResourceProviderFactory resourceProviderFactory,
			JpaSystemProvider<?, ?> systemProvider,
			BulkDataExportProvider bulkDataExportProvider,
			DatabaseBackedPagingProvider pagingProvider,
			JpaStorageSettings storageSettings,
			ISearchParamRegistry searchParamRegistry,
			IValidationSupport validationSupport) {
		FhirContext ctx = systemDao.getContext();
		ctx.setNarrativeGenerator(new NullNarrativeGenerator());

		RestfulServer server = new RestfulServer(ctx);
		// Type-level providers for every R4 resource type (read/vread/search/create/update/
		// conditional create and update/delete/history/$validate ...), plus system-level
		// operations (transaction/batch Bundle, _history, $meta ...).
		server.registerProviders(resourceProviderFactory.createProviders());
		server.registerProvider(systemProvider);
		// $export (system, Patient, Group) and $export-poll-status.
		server.registerProvider(bulkDataExportProvider);

		JpaCapabilityStatementProvider capabilities = new JpaCapabilityStatementProvider(
				server, systemDao, storageSettings, searchParamRegistry, validationSupport);
		capabilities.setImplementationDescription("hrm-fhir sandbox (HAPI FHIR R4 JPA, H2 in-memory)");
		server.setServerConformanceProvider(capabilities);

		pagingProvider.setDefaultPageSize(myDefaultPageSize);
		pagingProvider.setMaximumPageSize(myMaxPageSize);
		server.setPagingProvider(pagingProvider);

		server.setETagSupport(ETagSupportEnum.ENABLED);
		server.setDefaultResponseEncoding(EncodingEnum.JSON);
		server.setDefaultPrettyPrint(false);
		server.setServerAddressStrategy(new IncomingRequestAddressStrategy());
		if (myIfMatch412) {
			server.registerInterceptor(new IfMatchPreconditionInterceptor());
		}

		ourLog.info(
				"hrm-fhir sandbox: default page size {}, max page size {}, search cache off, "
						+ "client id strategy {}, bulk export on (files over {} bytes on disk, kept {} h), "
						+ "stale If-Match -> {}",
				myDefaultPageSize,
				myMaxPageSize,
				storageSettings.getResourceClientIdStrategy(),
				myBinaryMinBytes,
				storageSettings.getBulkExportFileRetentionPeriodHours(),
				myIfMatch412 ? "412" : "409 (HAPI default)");
		return server;
	}
}
